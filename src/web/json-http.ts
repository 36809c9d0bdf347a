import type { IncomingMessage, ServerResponse } from 'node:http'
import { TunnelError, isTunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import { CONSOLE_SECURITY_HEADERS } from './security-headers.ts'

const MAX_BODY_BYTES = 64 * 1024

/** A JSON answer of a console endpoint, never cached, with the console's security headers. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const json = JSON.stringify(body)
  res.writeHead(status, {
    ...CONSOLE_SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(json)),
    'cache-control': 'no-store',
    ...headers,
  })
  res.end(json)
}

/** Answers a failure with its code and one line; our own faults are logged, callers' are not. */
export function sendError(res: ServerResponse, err: unknown, log: Logger): void {
  const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', undefined, { cause: err })
  if (e.httpStatus >= 500) log.error({ err }, 'console request failed')
  sendJson(res, e.httpStatus, e.toJSON())
}

/** The request body as a JSON object (Content-Type application/json, at most 64 KiB). */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? ''
  if (!type.startsWith('application/json')) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'Content-Type must be application/json')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new TunnelError('TUN_ERR_API_BODY_TOO_LARGE', `request body is larger than ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'request body is not valid JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'request body must be a JSON object')
  return parsed as Record<string, unknown>
}

/** The path of a request URL, without its query. */
export function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!
}
