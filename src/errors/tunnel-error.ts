import type { ErrorCode } from './codes.ts'
import { errorCatalog } from './codes.ts'

/**
 * Base of every error apptunnel raises on purpose. Callers branch on `code`, never on the message.
 * `httpStatus` is what an HTTP edge answers; `retryable` tells a connector whether to try again.
 */
export class TunnelError extends Error {
  readonly code: ErrorCode
  readonly httpStatus: number
  readonly retryable: boolean
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message?: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    const entry = errorCatalog[code]
    super(message ?? entry.message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TunnelError'
    this.code = code
    this.httpStatus = entry.httpStatus
    this.retryable = entry.retryable
    this.details = Object.freeze({ ...(options.details ?? {}) })
  }

  /** The small JSON body every HTTP edge answers with: a stable code and one human line. */
  toJSON(): { error: { code: ErrorCode; message: string } & Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } }
  }
}

export function isTunnelError(err: unknown): err is TunnelError {
  return err instanceof TunnelError
}
