import type { BodyFraming } from './body-framing.ts'
import { CHUNKED_BODY, NO_BODY, UNTIL_CLOSE_BODY } from './body-framing.ts'
import type { ResponseHead } from './response-head.ts'
import { describeByte, framingError, quoteForMessage } from './framing-error.ts'
import type { FieldSummary } from './parse-field-lines.ts'
import { CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, parseFieldLines, splitList } from './parse-field-lines.ts'
import { HeadText } from './head-text.ts'
import { parseContentLength } from './parse-content-length.ts'
import { parseHttpVersion } from './parse-http-version.ts'

const CR = 13
const LF = 10
const HTAB = 9
const SP = 32
const DEL = 0x7f
const ZERO = 0x30

/**
 * Parses a complete response head: `s`, also found as bytes at b[off] (see HeadScanner). `method`
 * is that of the request it answers; it only matters for final responses. Interim (1xx) and
 * tunnel-opening heads get no body.
 */
export function parseResponseHead(b: Buffer, off: number, s: string, method: string): ResponseHead {
  const versionMinor = parseHttpVersion(b, off, 'response')
  if (b[off + 8] !== SP) throw bad('expected SP after the HTTP version in the status line')
  const d0 = b[off + 9]! - ZERO
  const d1 = b[off + 10]! - ZERO
  const d2 = b[off + 11]! - ZERO
  if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) throw bad('malformed status code')
  const statusCode = d0 * 100 + d1 * 10 + d2
  let q = off + 12
  let c = b[q]!
  let reasonStart = q
  // `HTTP/1.1 200\r\n` (no SP, no reason) is seen in the wild and is harmless to accept.
  if (c === SP) {
    reasonStart = ++q
    c = b[q]!
    while (c !== CR) {
      if ((c < SP && c !== HTAB) || c === DEL || !(c >= 0)) throw bad(`invalid character ${describeByte(c)} in reason phrase`)
      c = b[++q]!
    }
  } else if (c !== CR) {
    throw bad(`unexpected ${describeByte(c)} after the status code`)
  }
  if (b[q + 1] !== LF) throw bad('bare CR in status line')

  const fieldsAt = q + 2 - off
  const fields = parseFieldLines(b, off, s, fieldsAt, 'response', false)
  const connection = fields.connection
  const persistent = (connection & CONNECTION_CLOSE) === 0 && (versionMinor === 1 || (connection & CONNECTION_KEEP_ALIVE) !== 0)
  let body: BodyFraming = NO_BODY
  let keepAlive = persistent
  const opensTunnel = statusCode === 101 || (method === 'CONNECT' && statusCode >= 200 && statusCode < 300)
  if (opensTunnel) {
    keepAlive = false
  } else if (statusCode >= 200 && method !== 'HEAD' && statusCode !== 204 && statusCode !== 304) {
    // Framing headers of bodiless responses describe a body that is never sent, so they are not checked.
    body = finalBodyFraming(fields, versionMinor)
    if (body.kind === 'until-close') keepAlive = false
  }
  return new ParsedResponseHead(statusCode, versionMinor, body, keepAlive, s, reasonStart - off, q - off, fieldsAt)
}

/**
 * A response head whose reason phrase is read from its text when first asked for, as its field list
 * is (HeadText): the ingress passes heads on as received and asks for neither.
 */
class ParsedResponseHead extends HeadText implements ResponseHead {
  readonly statusCode: number
  readonly versionMinor: 0 | 1
  readonly body: BodyFraming
  readonly keepAlive: boolean
  readonly #reasonStart: number
  readonly #reasonEnd: number

  constructor(statusCode: number, versionMinor: 0 | 1, body: BodyFraming, keepAlive: boolean, text: string, reasonStart: number, reasonEnd: number, fieldsAt: number) {
    super(text, fieldsAt)
    this.statusCode = statusCode
    this.versionMinor = versionMinor
    this.body = body
    this.keepAlive = keepAlive
    this.#reasonStart = reasonStart
    this.#reasonEnd = reasonEnd
  }

  get reason(): string {
    return this.text.slice(this.#reasonStart, this.#reasonEnd)
  }
}

/** RFC 9112 §6.3 for a response that has a body. */
function finalBodyFraming(fields: FieldSummary, versionMinor: 0 | 1): BodyFraming {
  const contentLengths = fields.contentLengths
  const transferEncodings = fields.transferEncodings
  if (transferEncodings !== undefined) {
    if (contentLengths !== undefined) throw bad('both Content-Length and Transfer-Encoding present')
    // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (versionMinor === 0) throw bad('Transfer-Encoding in an HTTP/1.0 response')
    const codings: string[] = []
    for (const value of transferEncodings) {
      for (const item of splitList(value)) codings.push(item.replace(/[ \t]*;.*$/, '').toLowerCase())
    }
    if (codings.length === 0) throw bad('empty Transfer-Encoding header')
    const chunkedAt = codings.indexOf('chunked')
    if (chunkedAt !== -1 && chunkedAt !== codings.lastIndexOf('chunked')) throw bad('chunked transfer coding applied more than once')
    // Chunked anywhere but last cannot delimit the body; §6.3 then reads until close.
    return chunkedAt === codings.length - 1 ? CHUNKED_BODY : UNTIL_CLOSE_BODY
  }
  if (contentLengths !== undefined) {
    if (contentLengths.length === 1) {
      const single = parseContentLength(contentLengths[0]!)
      if (single >= 0) return { kind: 'length', length: single }
    }
    // §8.6 lets a recipient accept repeated identical values ("42, 42" or two identical fields).
    let length = -1
    for (const value of contentLengths) {
      const items = splitList(value)
      if (items.length === 0) throw bad(`invalid Content-Length ${quoteForMessage(value)}`)
      for (const item of items) {
        const n = parseContentLength(item)
        if (n < 0) throw bad(`invalid Content-Length ${quoteForMessage(value)}`)
        if (length !== -1 && n !== length) throw bad('conflicting Content-Length values')
        length = n
      }
    }
    return { kind: 'length', length }
  }
  return UNTIL_CLOSE_BODY
}

function bad(message: string): Error {
  return framingError('response', 'TUN_ERR_HTTP_BAD_REQUEST', message)
}
