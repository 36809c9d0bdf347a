import type { FramerSide } from './framing-error.ts'
import { framingError } from './framing-error.ts'

const ZERO = 0x30
const ONE = 0x31
const DOT = 0x2e
const H = 0x48
const T = 0x54
const P = 0x50
const SLASH = 0x2f

/** Reads `HTTP/DIGIT.DIGIT` at b[q] and returns the minor version; only 1.0 and 1.1 are spoken. */
export function parseHttpVersion(b: Buffer, q: number, side: FramerSide): 0 | 1 {
  const major = b[q + 5]! - ZERO
  const minor = b[q + 7]! - ZERO
  if (
    b[q] !== H || b[q + 1] !== T || b[q + 2] !== T || b[q + 3] !== P || b[q + 4] !== SLASH ||
    !(major >= 0 && major <= 9) || b[q + 6] !== DOT || !(minor >= 0 && minor <= 9)
  ) {
    throw framingError(side, 'TUN_ERR_HTTP_BAD_REQUEST', `malformed HTTP version in the ${side === 'request' ? 'request' : 'status'} line`)
  }
  if (major + ZERO === ONE && minor <= 1) return minor as 0 | 1
  throw framingError(side, 'TUN_ERR_HTTP_VERSION', `HTTP version HTTP/${major}.${minor} is not supported`)
}
