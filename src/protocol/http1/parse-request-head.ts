import type { BodyFraming } from './body-framing.ts'
import { CHUNKED_BODY, NO_BODY } from './body-framing.ts'
import type { FieldNameSet } from './field-name-set.ts'
import type { RequestHead } from './request-head.ts'
import { describeByte, framingError, quoteForMessage } from './framing-error.ts'
import { CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, CONNECTION_UPGRADE, parseFieldLines } from './parse-field-lines.ts'
import { HeadText } from './head-text.ts'
import { parseContentLength } from './parse-content-length.ts'
import { parseHttpVersion } from './parse-http-version.ts'
import { TOKEN_CHARS, equalsIgnoreCaseAt } from './token-chars.ts'

const CR = 13
const LF = 10
const SP = 32
const DEL = 0x7f
const SLASH = 0x2f

/**
 * Parses and validates a complete request head: `s`, also found as bytes at b[off] (see HeadScanner).
 * `flag`: field names the caller will ask about with hasFieldIn(), looked for in the same pass.
 */
export function parseRequestHead(b: Buffer, off: number, s: string, flag?: FieldNameSet): RequestHead {
  let q = off
  let c = b[q]!
  while (TOKEN_CHARS[c] === 1) c = b[++q]!
  if (c !== SP) {
    throw bad(c === CR ? 'request line has no target' : `invalid character ${describeByte(c)} in method`)
  }
  const method = s.slice(0, q - off)
  const targetStart = ++q
  c = b[q]!
  while (c > SP && c < DEL) c = b[++q]!
  if (q === targetStart) {
    throw bad(c === SP ? 'more than one SP between method and target' : `invalid character ${describeByte(c)} in request target`)
  }
  if (c !== SP) {
    if (c === CR) throw bad(b[q + 1] === LF ? 'request line has no HTTP version' : 'bare CR in request line')
    throw bad(`invalid character ${describeByte(c)} in request target`)
  }
  const target = s.slice(targetStart - off, q - off)
  q++
  if (b[q] === SP) throw bad('more than one SP between target and HTTP version')
  // The version is judged before the target so that `PRI * HTTP/2.0` (an h2 preface) gets its 505.
  const versionMinor = parseHttpVersion(b, q, 'request')
  q += 8
  if (b[q] !== CR) throw bad('unexpected characters after the HTTP version in the request line')
  if (b[q + 1] !== LF) throw bad('bare CR in request line')
  // CONNECT would turn the connection into an opaque tunnel to wherever the upstream app chooses;
  // the ingress relays to one application, so refusing it keeps every later byte's framing known.
  if (method === 'CONNECT') throw framingError('request', 'TUN_ERR_HTTP_NOT_IMPLEMENTED', 'CONNECT is not supported')
  checkTargetForm(method, target)

  const fieldsAt = q + 2 - off
  const fields = parseFieldLines(b, off, s, fieldsAt, 'request', false, flag)

  if (fields.hostCount > 1) throw bad('more than one Host header')
  if (fields.hostCount === 0 && versionMinor === 1) throw bad('HTTP/1.1 request without a Host header')
  const host = fields.host
  if (host !== undefined && !isValidHost(host)) throw bad(`invalid Host header value ${quoteForMessage(host)}`)

  const contentLengths = fields.contentLengths
  const transferEncodings = fields.transferEncodings
  let body: BodyFraming = NO_BODY
  if (contentLengths !== undefined && contentLengths.length > 1) throw ambiguous('more than one Content-Length header')
  if (transferEncodings !== undefined && transferEncodings.length > 1) throw ambiguous('more than one Transfer-Encoding header')
  if (contentLengths !== undefined && transferEncodings !== undefined) throw ambiguous('both Content-Length and Transfer-Encoding present')
  if (transferEncodings !== undefined) {
    // RFC 9112 §6.1: an HTTP/1.0 recipient cannot be trusted to have framed it the same way.
    if (versionMinor === 0) throw bad('Transfer-Encoding in an HTTP/1.0 request')
    const coding = transferEncodings[0]!
    if (coding === '') throw bad('empty Transfer-Encoding header')
    if (coding.length !== 7 || !equalsIgnoreCaseAt(coding, 0, 'chunked')) throw unsupportedCoding(coding)
    body = CHUNKED_BODY
  } else if (contentLengths !== undefined) {
    const value = contentLengths[0]!
    const length = parseContentLength(value)
    if (length < 0) throw bad(`invalid Content-Length ${quoteForMessage(value)}`)
    body = { kind: 'length', length }
  }

  const connection = fields.connection
  const expect = fields.expect
  return new ParsedRequestHead(
    method,
    target,
    versionMinor,
    body,
    (connection & CONNECTION_CLOSE) === 0 && (versionMinor === 1 || (connection & CONNECTION_KEEP_ALIVE) !== 0),
    versionMinor === 1 && (connection & CONNECTION_UPGRADE) !== 0 && fields.hasUpgradeField,
    versionMinor === 1 && expect !== undefined && expect.length === 12 && equalsIgnoreCaseAt(expect, 0, '100-continue'),
    host,
    s,
    fieldsAt,
    flag,
    fields.flagged,
  )
}

/** A request head: what framing decided, and the fields its framer was asked to flag. */
class ParsedRequestHead extends HeadText implements RequestHead {
  readonly method: string
  readonly target: string
  readonly versionMinor: 0 | 1
  readonly body: BodyFraming
  readonly keepAlive: boolean
  readonly upgrade: boolean
  readonly expectContinue: boolean
  readonly host: string | undefined
  readonly #flag: FieldNameSet | undefined
  readonly #flagged: boolean

  constructor(
    method: string,
    target: string,
    versionMinor: 0 | 1,
    body: BodyFraming,
    keepAlive: boolean,
    upgrade: boolean,
    expectContinue: boolean,
    host: string | undefined,
    text: string,
    fieldsAt: number,
    flag: FieldNameSet | undefined,
    flagged: boolean,
  ) {
    super(text, fieldsAt)
    this.method = method
    this.target = target
    this.versionMinor = versionMinor
    this.body = body
    this.keepAlive = keepAlive
    this.upgrade = upgrade
    this.expectContinue = expectContinue
    this.host = host
    this.#flag = flag
    this.#flagged = flagged
  }

  hasFieldIn(names: FieldNameSet): boolean {
    if (names === this.#flag) return this.#flagged
    // Another set than the parse looked for: read the names (correct, only slower).
    for (const [name] of this.headers) if (names.has(name)) return true
    return false
  }
}

/** Origin-form, absolute-form or `*` for OPTIONS (RFC 9112 §3.2); anything else cannot be routed consistently. */
function checkTargetForm(method: string, target: string): void {
  if (target.charCodeAt(0) === SLASH) return
  if (target === '*') {
    if (method !== 'OPTIONS') throw bad('asterisk-form target is only allowed with OPTIONS')
    return
  }
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(target)) throw bad(`request target ${quoteForMessage(target)} is not origin-form, absolute-form or *`)
}

/**
 * uri-host [":" port] characters only (RFC 3986 reg-name, IP literals, port). The ingress routes on
 * Host, so anything a router might split or decode differently is refused here.
 */
function isValidHost(host: string): boolean {
  for (let i = 0; i < host.length; i++) {
    if (HOST_CHARS[host.charCodeAt(i)] !== 1) return false
  }
  return true
}

const HOST_CHARS: Uint8Array = (() => {
  const table = new Uint8Array(256)
  for (const ch of "-._~%!$&'()*+,;=:[]") table[ch.charCodeAt(0)] = 1
  for (let c = 0x30; c <= 0x39; c++) table[c] = 1
  for (let c = 0x41; c <= 0x5a; c++) table[c] = 1
  for (let c = 0x61; c <= 0x7a; c++) table[c] = 1
  return table
})()

function bad(message: string): Error {
  return framingError('request', 'TUN_ERR_HTTP_BAD_REQUEST', message)
}

function ambiguous(message: string): Error {
  return framingError('request', 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', message)
}

/**
 * RFC 9112 §6.3: when chunked is not the final coding of a request, its length cannot be known,
 * and the answer MUST be 400; so is chunked applied twice (§6.1). Only a list that does end in
 * chunked, behind codings the ingress does not decode, gets 501.
 */
function unsupportedCoding(coding: string): never {
  const codings = coding.split(',').map((c) => c.trim().toLowerCase())
  const quoted = quoteForMessage(coding)
  if (codings[codings.length - 1] !== 'chunked') {
    throw framingError('request', 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', `Transfer-Encoding ${quoted} does not end in "chunked": the body length cannot be determined`)
  }
  if (codings.indexOf('chunked') < codings.length - 1) throw framingError('request', 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', `Transfer-Encoding ${quoted} applies chunked more than once`)
  throw framingError('request', 'TUN_ERR_HTTP_NOT_IMPLEMENTED', `unsupported Transfer-Encoding ${quoted} (only "chunked" alone is accepted)`)
}
