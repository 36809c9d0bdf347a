import { TunnelError } from '../../errors/index.ts'

/** Size limits of one HTTP/1.x message head; every limit bounds memory held per connection. */
export interface Http1Limits {
  /** Whole head: start line, field lines and the blank line, CRLFs included. */
  maxHeadBytes: number
  maxHeaderCount: number
  /** Start line without its CRLF. */
  maxStartLineBytes: number
  /** Extension bytes of one chunk-size line (everything between the size and its CRLF). */
  maxChunkExtensionBytes: number
  /** Trailer section after the last chunk, its CRLFs included. */
  maxTrailerBytes: number
}

export const defaultHttp1Limits: Readonly<Http1Limits> = Object.freeze({
  maxHeadBytes: 16384,
  maxHeaderCount: 100,
  maxStartLineBytes: 8192,
  maxChunkExtensionBytes: 1024,
  maxTrailerBytes: 8192,
})

export function resolveHttp1Limits(limits: Partial<Http1Limits> | undefined): Http1Limits {
  const resolved: Http1Limits = { ...defaultHttp1Limits }
  for (const key of Object.keys(defaultHttp1Limits) as Array<keyof Http1Limits>) {
    // An explicit undefined (from an optional config field) means "the default", not "no limit".
    const value = limits?.[key] ?? resolved[key]
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TunnelError('TUN_ERR_CONFIG_INVALID', `Http1Limits.${key} must be a non-negative integer, got ${String(value)}`)
    }
    resolved[key] = value
  }
  return resolved
}
