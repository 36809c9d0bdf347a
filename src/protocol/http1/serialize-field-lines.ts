import { TunnelError } from '../../errors/index.ts'

// Anything but HTAB, SP, VCHAR and obs-text. Code points above 0xFF are refused because latin1
// cannot carry them and would silently truncate them into other bytes.
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * `name: value\r\n` for each field. Names and values come partly from our own code (X-Forwarded-*),
 * so they are checked here: a CR or LF slipping through would let a value inject header lines.
 */
export function serializeFieldLines(headers: ReadonlyArray<readonly [string, string]>): string {
  let out = ''
  for (const [name, value] of headers) {
    if (!TOKEN.test(name)) throw new TunnelError('TUN_ERR_INTERNAL', `refusing to serialize invalid field name ${JSON.stringify(name)}`)
    const bad = INVALID_VALUE_CHAR.exec(value)
    if (bad !== null) {
      throw new TunnelError('TUN_ERR_INTERNAL', `refusing to serialize field ${name}: value has character 0x${bad[0].charCodeAt(0).toString(16)} at ${bad.index}`)
    }
    out += `${name}: ${value}\r\n`
  }
  return out
}
