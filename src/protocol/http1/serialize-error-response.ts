import { TunnelError } from '../../errors/index.ts'
import { reasonPhrase } from './reason-phrase.ts'
import { serializeFieldLines } from './serialize-field-lines.ts'

// Set here and nowhere else: a second copy from extraHeaders would make the response ambiguous.
const RESERVED_FIELDS = new Set(['content-type', 'content-length', 'transfer-encoding', 'connection', 'cache-control'])

/**
 * A complete HTTP/1.1 response with a JSON body, closing the connection: what an edge answers when
 * it refuses a request (the framer has no way to resynchronise after a framing error).
 */
export function serializeErrorResponse(
  statusCode: number,
  body: unknown,
  extraHeaders: ReadonlyArray<readonly [string, string]> = [],
): Buffer {
  if (!Number.isInteger(statusCode) || statusCode < 200 || statusCode > 599) {
    throw new TunnelError('TUN_ERR_INTERNAL', `refusing to serialize an error response with status ${String(statusCode)}`)
  }
  for (const [name] of extraHeaders) {
    if (RESERVED_FIELDS.has(name.toLowerCase())) throw new TunnelError('TUN_ERR_INTERNAL', `${name} is set by serializeErrorResponse itself`)
  }
  const json = Buffer.from(JSON.stringify(body) ?? 'null', 'utf8')
  const head =
    `HTTP/1.1 ${statusCode} ${reasonPhrase(statusCode)}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${json.length}\r\n` +
    'Connection: close\r\n' +
    'Cache-Control: no-store\r\n' +
    serializeFieldLines(extraHeaders) +
    '\r\n'
  const headBytes = Buffer.byteLength(head, 'latin1')
  const out = Buffer.allocUnsafe(headBytes + json.length)
  out.write(head, 0, 'latin1')
  json.copy(out, headBytes)
  return out
}
