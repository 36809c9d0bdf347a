import { TunnelError } from '../../errors/index.ts'

export type FramerSide = 'request' | 'response'

export type RequestFramingCode =
  | 'TUN_ERR_HTTP_BAD_REQUEST'
  | 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING'
  | 'TUN_ERR_HTTP_HEADERS_TOO_LARGE'
  | 'TUN_ERR_HTTP_URI_TOO_LONG'
  | 'TUN_ERR_HTTP_NOT_IMPLEMENTED'
  | 'TUN_ERR_HTTP_VERSION'

/**
 * Shared parsing code names the request-side code; a malformed response is always the upstream's
 * fault, so every response problem collapses to one code and only the message tells them apart.
 */
export function framingError(side: FramerSide, code: RequestFramingCode, message: string): TunnelError {
  return side === 'request'
    ? new TunnelError(code, message)
    : new TunnelError('TUN_ERR_UPSTREAM_BAD_RESPONSE', message)
}

export function describeByte(c: number): string {
  const hex = `0x${c.toString(16).toUpperCase().padStart(2, '0')}`
  return c > 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}' (${hex})` : hex
}

/** Peer-controlled text inside an error message: bounded and escaped, since messages reach logs and JSON bodies. */
export function quoteForMessage(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
}
