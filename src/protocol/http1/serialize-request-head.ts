import { TunnelError } from '../../errors/index.ts'
import { serializeFieldLines } from './serialize-field-lines.ts'
import { isToken } from './token-chars.ts'

// Visible ASCII only, as the RequestFramer accepts.
const INVALID_TARGET_CHAR = /[^\x21-\x7e]/

/** The head as HTTP/1.x wire bytes (latin1, CRLF), ending with the blank line. */
export function serializeRequestHead(head: {
  method: string
  target: string
  versionMinor: 0 | 1
  headers: ReadonlyArray<readonly [string, string]>
}): Buffer {
  if (!isToken(head.method)) throw new TunnelError('TUN_ERR_INTERNAL', `refusing to serialize invalid method ${JSON.stringify(head.method)}`)
  const target = head.target
  if (target.length === 0 || INVALID_TARGET_CHAR.test(target)) {
    throw new TunnelError('TUN_ERR_INTERNAL', `refusing to serialize invalid request target ${JSON.stringify(target.slice(0, 64))}`)
  }
  const version = head.versionMinor === 1 ? ' HTTP/1.1\r\n' : ' HTTP/1.0\r\n'
  return Buffer.from(`${head.method} ${target}${version}${serializeFieldLines(head.headers)}\r\n`, 'latin1')
}
