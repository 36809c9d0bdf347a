import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { ErrorCode } from '../../errors/index.ts'
import type { Http1Limits } from './http1-limits.ts'
import type { RequestHead } from './request-head.ts'
import { FieldNameSet } from './field-name-set.ts'
import { MAX_BYTES_AWAITING_UPGRADE, RequestFramer } from './request-framer.ts'
import { EventRecorder, oneByteChunks } from '../../testing/http1/event-recorder.ts'
import { assertTunnelError } from '../../testing/http1/assert-tunnel-error.ts'

const BAD: ErrorCode = 'TUN_ERR_HTTP_BAD_REQUEST'
const AMBIGUOUS: ErrorCode = 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING'
const TOO_LARGE: ErrorCode = 'TUN_ERR_HTTP_HEADERS_TOO_LARGE'
const URI_TOO_LONG: ErrorCode = 'TUN_ERR_HTTP_URI_TOO_LONG'
const NOT_IMPLEMENTED: ErrorCode = 'TUN_ERR_HTTP_NOT_IMPLEMENTED'
const VERSION: ErrorCode = 'TUN_ERR_HTTP_VERSION'

function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1')
}

function frame(input: string | Buffer | ReadonlyArray<string | Buffer>, limits?: Partial<Http1Limits>) {
  const recorder = new EventRecorder()
  const framer = new RequestFramer(recorder.request, limits)
  const parts = typeof input === 'string' || Buffer.isBuffer(input) ? [input] : input
  for (const part of parts) framer.push(typeof part === 'string' ? bytes(part) : part)
  return { recorder, framer, heads: recorder.heads<RequestHead>() }
}

function head(input: string, limits?: Partial<Http1Limits>): RequestHead {
  const { heads } = frame(input, limits)
  assert.equal(heads.length, 1)
  return heads[0]!
}

/** Fed whole and byte by byte: both must fail the same way. */
function refuse(input: string, code: ErrorCode, message?: string | RegExp, limits?: Partial<Http1Limits>): void {
  const label = JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input)
  assertTunnelError(() => frame(input, limits), code, message, `${label} whole: `)
  assertTunnelError(() => frame(oneByteChunks(bytes(input)), limits), code, message, `${label} byte by byte: `)
}

const GET = 'GET / HTTP/1.1\r\nHost: a\r\n'

describe('RequestFramer: request line', () => {
  it('parses method, target and version', () => {
    const h = head('POST /a/b?c=d&e HTTP/1.0\r\n\r\n')
    assert.equal(h.method, 'POST')
    assert.equal(h.target, '/a/b?c=d&e')
    assert.equal(h.versionMinor, 0)
    assert.equal(h.host, undefined)
    assert.deepEqual(h.headers, [])
    assert.deepEqual(h.body, { kind: 'none' })
  })

  it('accepts any token as method, absolute-form targets and OPTIONS *', () => {
    assert.equal(head("M-SEARCH!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n").method, "M-SEARCH!#$%&'*+.^_`|~")
    assert.equal(head('GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n').target, 'http://a.example/x?y')
    assert.equal(head('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n').target, '*')
  })

  const table: Array<[string, ErrorCode, string | RegExp]> = [
    ['GET  / HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'more than one SP between method and target'],
    ['GET /  HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'more than one SP between target and HTTP version'],
    ['GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'invalid character 0x09 in method'],
    ['GET / HTTP/1.1 \r\nHost: a\r\n\r\n', BAD, 'unexpected characters after the HTTP version in the request line'],
    ['G(T / HTTP/1.1\r\nHost: a\r\n\r\n', BAD, /invalid character '\(' .* in method/],
    ['GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'invalid character 0x00 in request target'],
    ['GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'invalid character 0xE9 in request target'],
    ['GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'invalid character 0x7F in request target'],
    ['GET /\r\nHost: a\r\n\r\n', BAD, 'request line has no HTTP version'],
    ['GET\r\nHost: a\r\n\r\n', BAD, 'request line has no target'],
    ['GET / http/1.1\r\nHost: a\r\n\r\n', BAD, 'malformed HTTP version in the request line'],
    ['GET / HTTP/1\r\nHost: a\r\n\r\n', BAD, 'malformed HTTP version in the request line'],
    ['GET / HTTP/1.10\r\nHost: a\r\n\r\n', BAD, 'unexpected characters after the HTTP version in the request line'],
    ['GET / HTTP/1.2\r\nHost: a\r\n\r\n', VERSION, 'HTTP version HTTP/1.2 is not supported'],
    ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', VERSION, 'HTTP version HTTP/2.0 is not supported'],
    ['GET / HTTP/0.9\r\nHost: a\r\n\r\n', VERSION, 'HTTP version HTTP/0.9 is not supported'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', VERSION, 'HTTP version HTTP/2.0 is not supported'],
    ['GET a/b HTTP/1.1\r\nHost: a\r\n\r\n', BAD, /is not origin-form, absolute-form or \*/],
    ['GET * HTTP/1.1\r\nHost: a\r\n\r\n', BAD, 'asterisk-form target is only allowed with OPTIONS'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n', NOT_IMPLEMENTED, 'CONNECT is not supported'],
    ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', BAD, 'request line starts with 0x16'],
  ]
  for (const [input, code, message] of table) {
    it(`refuses ${JSON.stringify(input.split('\r\n')[0])} with ${code}`, () => refuse(input, code, message))
  }

  it('ignores up to four empty lines before a request, not five', () => {
    assert.equal(head(`\r\n\r\n\r\n\r\n${GET}\r\n`).method, 'GET')
    refuse(`\r\n\r\n\r\n\r\n\r\n${GET}\r\n`, BAD, 'more than 4 empty lines before the request line')
    refuse(`\n${GET}\r\n`, BAD, 'bare LF in request line')
  })

  it('refuses a start line longer than maxStartLineBytes as soon as it is buffered (414)', () => {
    const limits = { maxStartLineBytes: 32 }
    const exact = `GET /${'a'.repeat(32 - 'GET / HTTP/1.1'.length)} HTTP/1.1`
    assert.equal(exact.length, 32)
    assert.equal(head(`${exact}\r\nHost: a\r\n\r\n`, limits).method, 'GET')
    refuse(`GET /${'a'.repeat(33 - 'GET / HTTP/1.1'.length)} HTTP/1.1\r\nHost: a\r\n\r\n`, URI_TOO_LONG, 'request line longer than 32 bytes', limits)
    // No CRLF yet: the 33rd buffered byte already decides it.
    const framer = new RequestFramer(new EventRecorder().request, limits)
    framer.push(bytes(`GET /${'a'.repeat(27)}`))
    framer.push(bytes('\r'))
    assertTunnelError(() => framer.push(bytes('x')), URI_TOO_LONG)
    assert.equal(framer.state, 'dead')
  })
})

describe('RequestFramer: field lines', () => {
  it('keeps order and case, trims OWS, decodes obs-text as latin1', () => {
    const h = head('GET / HTTP/1.1\r\nHost:  a.example \r\nX-A:\tone \t two\t\r\nx-a: \r\nX-Obs: caf\xe9\xff\r\n\r\n')
    assert.deepEqual(h.headers, [
      ['Host', 'a.example'],
      ['X-A', 'one \t two'],
      ['x-a', ''],
      ['X-Obs', 'caf\xe9\xff'],
    ])
    assert.equal(h.host, 'a.example')
  })

  const table: Array<[string, string, string | RegExp]> = [
    ['obs-fold', `${GET}X-A: 1\r\n 2\r\n\r\n`, 'obs-fold (line starting with whitespace) in header line 3'],
    ['obs-fold with HTAB', `${GET}X-A: 1\r\n\t2\r\n\r\n`, 'obs-fold (line starting with whitespace) in header line 3'],
    ['whitespace before the first field', 'GET / HTTP/1.1\r\n Host: a\r\n\r\n', 'obs-fold (line starting with whitespace) in header line 1'],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 'whitespace between field name and colon in header line 1'],
    ['tab before colon', 'GET / HTTP/1.1\r\nHost\t: a\r\n\r\n', 'whitespace between field name and colon in header line 1'],
    ['space inside name', `${GET}X A: 1\r\n\r\n`, 'whitespace inside field name in header line 2'],
    ['empty name', `${GET}: 1\r\n\r\n`, 'empty field name in header line 2'],
    ['non-token name', `${GET}X(A): 1\r\n\r\n`, /invalid character '\(' .* in field name of header line 2/],
    ['missing colon', `${GET}X-A\r\n\r\n`, 'missing colon in header line 2'],
    ['NUL in value', `${GET}X-A: a\x00b\r\n\r\n`, 'invalid character 0x00 in field value of header line 2'],
    ['DEL in value', `${GET}X-A: a\x7fb\r\n\r\n`, 'invalid character 0x7F in field value of header line 2'],
    ['VT in value', `${GET}X-A: a\x0bb\r\n\r\n`, 'invalid character 0x0B in field value of header line 2'],
    ['bare LF ending a field', `${GET}X-A: 1\nX-B: 2\r\n\r\n`, 'bare LF in header line 2'],
    ['bare LF ending the request line', 'GET / HTTP/1.1\nHost: a\r\n\r\n', 'bare LF in request line'],
    ['bare LF as the blank line', `${GET}\n`, 'bare LF in header line 2'],
    ['all bare LF', 'GET / HTTP/1.1\nHost: a\n\n', 'bare LF in request line'],
    ['bare CR inside a value', `${GET}X-A: 1\r2\r\n\r\n`, 'bare CR in header line 2'],
    ['bare CR inside a name', `${GET}X-A\r: 1\r\n\r\n`, 'bare CR in header line 2'],
    ['bare CR in the request line', 'GET /\r HTTP/1.1\r\nHost: a\r\n\r\n', 'bare CR in request line'],
    ['CR CR LF ending a field', `${GET}X-A: 1\r\r\n\r\n`, 'bare CR in header line 2'],
    ['bare CR before the blank line', `${GET}\rX\r\n\r\n`, 'bare CR in header line 2'],
  ]
  for (const [name, input, message] of table) {
    it(`refuses ${name} (400)`, () => refuse(input, BAD, message))
  }

  it('refuses a head over maxHeadBytes as soon as the buffered part passes it (431)', () => {
    const limits = { maxHeadBytes: 64 }
    const fits = `${GET}X: ${'a'.repeat(64 - GET.length - 7)}\r\n\r\n`
    assert.equal(fits.length, 64)
    assert.equal(head(fits, limits).headers.length, 2)
    refuse(`${GET}X: ${'a'.repeat(64 - GET.length - 6)}\r\n\r\n`, TOO_LARGE, 'head larger than 64 bytes', limits)
    const framer = new RequestFramer(new EventRecorder().request, limits)
    framer.push(bytes(`${GET}X: ${'a'.repeat(64 - GET.length - 3)}`))
    assert.equal(framer.bufferedHeadBytes, 64)
    assertTunnelError(() => framer.push(bytes('a')), TOO_LARGE, 'head larger than 64 bytes')
  })

  it('uses 16 KiB heads, 100 fields and 8 KiB start lines by default', () => {
    assert.equal(head(`GET /${'a'.repeat(8192 - 14)} HTTP/1.1\r\nHost: a\r\n\r\n`).method, 'GET')
    refuse(`GET /${'a'.repeat(8192 - 13)} HTTP/1.1\r\nHost: a\r\n\r\n`, URI_TOO_LONG, 'request line longer than 8192 bytes')
    refuse(`${GET}X: ${'a'.repeat(16384)}\r\n\r\n`, TOO_LARGE)
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join('')
    assert.equal(head(`${GET}${fields(99)}\r\n`).headers.length, 100)
    refuse(`${GET}${fields(100)}\r\n`, TOO_LARGE, 'more than 100 header fields')
  })

  it('refuses more than maxHeaderCount fields (431)', () => {
    assert.equal(head(`${GET}X-1: 1\r\nX-2: 2\r\n\r\n`, { maxHeaderCount: 3 }).headers.length, 3)
    refuse(`${GET}X-1: 1\r\nX-2: 2\r\nX-3: 3\r\n\r\n`, TOO_LARGE, 'more than 3 header fields', { maxHeaderCount: 3 })
  })

  it('reports bufferedHeadBytes of an incomplete head only', () => {
    const recorder = new EventRecorder()
    const framer = new RequestFramer(recorder.request)
    assert.equal(framer.bufferedHeadBytes, 0)
    framer.push(bytes('GET / HT'))
    assert.equal(framer.bufferedHeadBytes, 8)
    framer.push(bytes('TP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab'))
    assert.equal(framer.bufferedHeadBytes, 0)
    assert.equal(framer.state, 'body')
    framer.push(bytes('cdeGET'))
    assert.equal(framer.state, 'head')
    assert.equal(framer.bufferedHeadBytes, 3)
  })
})

describe('RequestFramer: Host, Connection, Expect, Upgrade', () => {
  it('requires exactly one Host in HTTP/1.1, at most one in 1.0', () => {
    refuse('GET / HTTP/1.1\r\n\r\n', BAD, 'HTTP/1.1 request without a Host header')
    refuse('GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', BAD, 'more than one Host header')
    refuse('GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n', BAD, 'more than one Host header')
    assert.equal(head('GET / HTTP/1.0\r\n\r\n').host, undefined)
    assert.equal(head('GET / HTTP/1.1\r\nHOST: [::1]:8080\r\n\r\n').host, '[::1]:8080')
    assert.equal(head('GET / HTTP/1.1\r\nHost:\r\n\r\n').host, '')
  })

  it('refuses Host values a router could split differently', () => {
    refuse('GET / HTTP/1.1\r\nHost: a b\r\n\r\n', BAD, 'invalid Host header value "a b"')
    refuse('GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', BAD, 'invalid Host header value "a/b"')
    refuse('GET / HTTP/1.1\r\nHost: user@a\r\n\r\n', BAD, 'invalid Host header value "user@a"')
  })

  it('derives keepAlive from version and Connection tokens', () => {
    const cases: Array<[string, string, boolean]> = [
      ['1.1', '', true],
      ['1.1', 'Connection: close\r\n', false],
      ['1.1', 'Connection: Keep-Alive, CLOSE\r\n', false],
      ['1.1', 'Connection: foo\r\nConnection: close\r\n', false],
      ['1.1', 'Connection: closed\r\n', true],
      ['1.0', '', false],
      ['1.0', 'Connection: keep-alive\r\n', true],
      ['1.0', 'Connection: te ,\t Keep-Alive \r\n', true],
      ['1.0', 'Connection: keep-alive, close\r\n', false],
    ]
    for (const [version, fields, keepAlive] of cases) {
      assert.equal(head(`GET / HTTP/${version}\r\nHost: a\r\n${fields}\r\n`).keepAlive, keepAlive, `${version} ${fields}`)
    }
  })

  it('sets upgrade only with Connection: upgrade and an Upgrade field, in HTTP/1.1', () => {
    assert.equal(head(`${GET}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`).upgrade, true)
    assert.equal(head(`${GET}Connection: keep-alive, upgrade\r\nupgrade: h2c\r\n\r\n`).upgrade, true)
    assert.equal(head(`${GET}Upgrade: websocket\r\n\r\n`).upgrade, false)
    assert.equal(head(`${GET}Connection: upgrade\r\n\r\n`).upgrade, false)
    assert.equal(head('GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n').upgrade, false)
  })

  it('sets expectContinue for Expect: 100-continue in HTTP/1.1', () => {
    assert.equal(head(`${GET}Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx`).expectContinue, true)
    assert.equal(head(`${GET}Expect: something-else\r\n\r\n`).expectContinue, false)
    assert.equal(head('POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n').expectContinue, false)
  })
})

describe('RequestFramer: the head as received, and the fields its owner flags', () => {
  const FLAGGED = new FieldNameSet(['x-forwarded-for', 'te'])

  function flaggedHead(input: string): RequestHead {
    const recorder = new EventRecorder()
    new RequestFramer(recorder.request, undefined, FLAGGED).push(bytes(input))
    return recorder.heads<RequestHead>()[0]!
  }

  it('text is the head from its request line through the blank line, without the empty lines before it', () => {
    const h = head(`\r\n\r\n${GET}Accept:  */*  \r\n\r\nbody-is-not-here`)
    assert.equal(h.text, `${GET}Accept:  */*  \r\n\r\n`)
  })

  it('the field list is read from the text on demand, and is the same list each time', () => {
    const h = head(`${GET}Accept:  */*  \r\nX-A:\r\n\r\n`)
    assert.deepEqual(h.headers, [['Host', 'a'], ['Accept', '*/*'], ['X-A', '']])
    assert.equal(h.headers, h.headers)
  })

  it('hasFieldIn answers for the set the framer was given, in any letter case', () => {
    assert.equal(flaggedHead(`${GET}Accept: */*\r\n\r\n`).hasFieldIn(FLAGGED), false)
    assert.equal(flaggedHead(`${GET}x-FORWARDED-for: 10.0.0.1\r\n\r\n`).hasFieldIn(FLAGGED), true)
    assert.equal(flaggedHead(`GET / HTTP/1.1\r\nTE: trailers\r\nHost: a\r\n\r\n`).hasFieldIn(FLAGGED), true)
    // Same length, other letters: not flagged.
    assert.equal(flaggedHead(`${GET}X-Forwarded-Fox: 1\r\nTT: 1\r\n\r\n`).hasFieldIn(FLAGGED), false)
  })

  it('hasFieldIn with another set than the framer was given reads the field names', () => {
    const other = new FieldNameSet(['accept'])
    assert.equal(head(`${GET}ACCEPT: */*\r\n\r\n`).hasFieldIn(other), true)
    assert.equal(head(`${GET}X-Forwarded-For: 1\r\n\r\n`).hasFieldIn(FLAGGED), true)
    assert.equal(flaggedHead(`${GET}Accept: */*\r\n\r\n`).hasFieldIn(other), true)
    assert.equal(flaggedHead(`${GET}\r\n`).hasFieldIn(other), false)
  })
})

describe('RequestFramer: body framing and smuggling', () => {
  it('frames a Content-Length body', () => {
    const { recorder } = frame(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhelloGET`)
    assert.deepEqual(recorder.heads<RequestHead>()[0]!.body, { kind: 'length', length: 5 })
    assert.deepEqual(recorder.normalized().slice(1), [{ body: 'hello' }, 'end'])
  })

  it('accepts Content-Length up to Number.MAX_SAFE_INTEGER', () => {
    const { framer, heads } = frame(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${Number.MAX_SAFE_INTEGER}\r\n\r\nabc`)
    assert.deepEqual(heads[0]!.body, { kind: 'length', length: Number.MAX_SAFE_INTEGER })
    assert.equal(framer.state, 'body')
    refuse(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${Number.MAX_SAFE_INTEGER + 1}\r\n\r\n`, BAD, 'invalid Content-Length "9007199254740992"')
  })

  it('treats Content-Length: 0 and no framing at all as an empty body', () => {
    const { recorder } = frame(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n${GET}\r\n`)
    assert.deepEqual(recorder.normalized().filter((e) => e === 'end').length, 2)
  })

  const smuggling: Array<[string, string, ErrorCode, string | RegExp]> = [
    ['CL + TE', 'Content-Length: 5\r\nTransfer-Encoding: chunked', AMBIGUOUS, 'both Content-Length and Transfer-Encoding present'],
    ['TE + CL', 'Transfer-Encoding: chunked\r\nContent-Length: 5', AMBIGUOUS, 'both Content-Length and Transfer-Encoding present'],
    ['duplicate CL', 'Content-Length: 5\r\nContent-Length: 6', AMBIGUOUS, 'more than one Content-Length header'],
    ['identical duplicate CL', 'Content-Length: 5\r\ncontent-length: 5', AMBIGUOUS, 'more than one Content-Length header'],
    ['CL list', 'Content-Length: 5, 5', BAD, 'invalid Content-Length "5, 5"'],
    ['CL +5', 'Content-Length: +5', BAD, 'invalid Content-Length "+5"'],
    ['CL -1', 'Content-Length: -1', BAD, 'invalid Content-Length "-1"'],
    ['CL with inner space', 'Content-Length: 1 0', BAD, 'invalid Content-Length "1 0"'],
    ['CL hex', 'Content-Length: 0x10', BAD, 'invalid Content-Length "0x10"'],
    ['CL empty', 'Content-Length: ', BAD, 'invalid Content-Length ""'],
    ['CL decimal', 'Content-Length: 1.0', BAD, 'invalid Content-Length "1.0"'],
    // RFC 9112 §6.3: chunked not final → 400 (MUST); §6.1: chunked twice → 400; else unknown codings → 501.
    ['TE chunked, identity', 'Transfer-Encoding: chunked, identity', AMBIGUOUS, 'Transfer-Encoding "chunked, identity" does not end in "chunked": the body length cannot be determined'],
    ['TE chunked, chunked', 'Transfer-Encoding: chunked, chunked', AMBIGUOUS, 'Transfer-Encoding "chunked, chunked" applies chunked more than once'],
    ['TE gzip, chunked', 'Transfer-Encoding: gzip, chunked', NOT_IMPLEMENTED, 'unsupported Transfer-Encoding "gzip, chunked" (only "chunked" alone is accepted)'],
    ['TE gzip,chunked without space', 'Transfer-Encoding: gzip,chunked', NOT_IMPLEMENTED, /unsupported Transfer-Encoding "gzip,chunked"/],
    ['TE identity', 'Transfer-Encoding: identity', AMBIGUOUS, /Transfer-Encoding "identity" does not end in "chunked"/],
    ['TE xchunked', 'Transfer-Encoding: xchunked', AMBIGUOUS, /Transfer-Encoding "xchunked" does not end in "chunked"/],
    ['TE chunked;x', 'Transfer-Encoding: chunked;x=1', AMBIGUOUS, /does not end in "chunked"/],
    ['TE with obs-text', 'Transfer-Encoding: chunked\xff', AMBIGUOUS, /does not end in "chunked"/],
    ['TE empty', 'Transfer-Encoding: ', BAD, 'empty Transfer-Encoding header'],
    ['TE twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', AMBIGUOUS, 'more than one Transfer-Encoding header'],
    ['space before colon', 'Transfer-Encoding : chunked', BAD, 'whitespace between field name and colon in header line 2'],
    ['obs-fold continuation', 'Transfer-Encoding: gzip\r\n chunked', BAD, 'obs-fold (line starting with whitespace) in header line 3'],
    ['NUL in TE', 'Transfer-Encoding: chun\x00ked', BAD, 'invalid character 0x00 in field value of header line 2'],
    ['bare LF field', 'Transfer-Encoding: chunked\nX: y', BAD, 'bare LF in header line 2'],
    ['bare CR field', 'Content-Length: 5\rTransfer-Encoding: chunked', BAD, 'bare CR in header line 2'],
    ['two Hosts', 'Host: b', BAD, 'more than one Host header'],
  ]
  for (const [name, fields, code, message] of smuggling) {
    it(`smuggling: ${name} → ${code}`, () => refuse(`POST / HTTP/1.1\r\nHost: a\r\n${fields}\r\n\r\n`, code, message))
  }

  it('smuggling: Transfer-Encoding:<HTAB>chunked is fine (HTAB is OWS)', () => {
    assert.deepEqual(head('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\t\r\n\r\n0\r\n\r\n').body, { kind: 'chunked' })
    assert.deepEqual(head('POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n').body, { kind: 'chunked' })
  })

  it('smuggling: Transfer-Encoding in HTTP/1.0 → 400', () => {
    refuse('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', BAD, 'Transfer-Encoding in an HTTP/1.0 request')
  })

  it('smuggling: no Host in HTTP/1.1 → 400', () => refuse('POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n', BAD))

  it('smuggling: a bare-LF request → 400', () => refuse('GET / HTTP/1.1\nHost: a\n\n', BAD, 'bare LF in request line'))
})

describe('RequestFramer: chunked bodies', () => {
  const POST = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'

  it('hands every body byte over verbatim, framing included', () => {
    const body = '5\r\nhello\r\n1A;name=value ; flag;q="a \\"b\\"\tc\xe9"\r\nabcdefghijklmnopqrstuvwxyz\r\n000\r\nX-Sum: 1\r\nX-Other:\r\n\r\n'
    const { recorder, framer } = frame(`${POST}${body}${GET}\r\n`)
    assert.deepEqual(recorder.normalized().slice(1, 3), [{ body }, 'end'])
    assert.equal(recorder.heads().length, 2)
    assert.equal(framer.state, 'head')
  })

  it('accepts up to 16 hex digits, either case, and BWS around ; and =', () => {
    for (const line of ['000000000000000a', 'A', 'a ;x', 'a\t; x = y', 'a;x=y;z', 'a;x="";y']) {
      const { recorder } = frame(`${POST}${line}\r\n0123456789\r\n0\r\n\r\n`)
      assert.equal(recorder.normalized().at(-1), 'end', line)
    }
  })

  const table: Array<[string, string, ErrorCode, string | RegExp]> = [
    ['0x prefix', '0x10\r\n', BAD, /invalid character 'x' .* in chunk size/],
    ['negative size', '-1\r\n', BAD, 'signed chunk size'],
    ['plus sign', '+1\r\n', BAD, 'signed chunk size'],
    ['space inside size', '1 0\r\n', BAD, /invalid character '0' .* in chunk extension/],
    ['space before size', ' 5\r\nhello\r\n', BAD, 'whitespace before chunk size'],
    ['trailing space after size', '5 \r\nhello\r\n', BAD, 'incomplete chunk extension (ends in whitespace, ";" or "=")'],
    ['17 hex digits', '00000000000000005\r\nhello\r\n', BAD, 'chunk size has more than 16 hex digits'],
    ['size above 2^53 - 1', '20000000000000\r\n', BAD, 'chunk size exceeds 2^53 - 1'],
    ['non-hex size', 'g\r\n', BAD, /invalid character 'g' .* in chunk size/],
    ['empty size', '\r\n', BAD, 'empty chunk size'],
    ['bare LF after size', '5\nhello\r\n', BAD, 'bare LF in chunk size line'],
    ['bare CR after size', '5\rhello\r\n', BAD, 'bare CR in chunk size line'],
    ['data longer than size', '5\r\nhello!\r\n0\r\n\r\n', BAD, /missing CRLF after chunk data \(found '!'/],
    ['LF only after data', '5\r\nhello\n0\r\n\r\n', BAD, 'missing CRLF after chunk data (found 0x0A)'],
    ['CR only after data', '5\r\nhello\r0\r\n\r\n', BAD, 'missing CRLF after chunk data (bare CR)'],
    ['extension without name', '5;\r\nhello\r\n', BAD, 'incomplete chunk extension (ends in whitespace, ";" or "=")'],
    ['extension with empty value', '5;a=\r\nhello\r\n', BAD, 'incomplete chunk extension (ends in whitespace, ";" or "=")'],
    ['unterminated quoted extension', '5;a="x\r\nhello\r\n', BAD, 'unterminated quoted string in chunk extension'],
    ['extension with CTL', '5;a\x00\r\nhello\r\n', BAD, 'invalid character 0x00 in chunk extension'],
    ['extension without ;', '5 a\r\nhello\r\n', BAD, /invalid character 'a' .* in chunk extension/],
    ['trailer obs-fold', '0\r\nX-A: 1\r\n 2\r\n\r\n', BAD, 'obs-fold (line starting with whitespace) in trailer line 2'],
    ['trailer NUL', '0\r\nX-A: \x00\r\n\r\n', BAD, 'invalid character 0x00 in field value of trailer line 1'],
    ['trailer bare LF', '0\r\nX-A: 1\n\r\n', BAD, 'bare LF in trailer line 1'],
    ['trailer bare CR', '0\r\nX-A: 1\rX\r\n\r\n', BAD, 'bare CR in trailer line 1'],
    ['final bare LF', '0\r\n\n', BAD, 'bare LF in trailer line 1'],
    ['trailer space before colon', '0\r\nX-A : 1\r\n\r\n', BAD, 'whitespace after field name in trailer line 1'],
    ['trailer missing colon', '0\r\nX-A\r\n\r\n', BAD, 'missing colon in trailer line 1'],
    ['trailer Content-Length', '0\r\nContent-Length: 5\r\n\r\n', BAD, 'content-length is not allowed in a trailer (trailer line 1)'],
    ['trailer Transfer-Encoding', '0\r\nTransfer-encoding: chunked\r\n\r\n', BAD, /transfer-encoding is not allowed in a trailer/],
    ['trailer Host', '0\r\nHOST: b\r\n\r\n', BAD, /host is not allowed in a trailer/],
  ]
  for (const [name, body, code, message] of table) {
    it(`refuses ${name}`, () => refuse(`${POST}${body}`, code, message))
  }

  it('limits chunk extensions to maxChunkExtensionBytes', () => {
    const ext = `;${'x'.repeat(15)}`
    assert.equal(frame(`${POST}1${ext}\r\na\r\n0\r\n\r\n`, { maxChunkExtensionBytes: 16 }).framer.state, 'head')
    refuse(`${POST}1${ext}x\r\na\r\n0\r\n\r\n`, BAD, 'chunk extension longer than 16 bytes', { maxChunkExtensionBytes: 16 })
  })

  it('limits trailers to maxTrailerBytes (431)', () => {
    const trailer = `X: ${'a'.repeat(11)}\r\n\r\n`
    assert.equal(trailer.length, 18)
    assert.equal(frame(`${POST}0\r\n${trailer}`, { maxTrailerBytes: 18 }).framer.state, 'head')
    refuse(`${POST}0\r\nX: ${'a'.repeat(12)}\r\n\r\n`, TOO_LARGE, 'trailer section larger than 18 bytes', { maxTrailerBytes: 18 })
    refuse(`${POST}0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n`, TOO_LARGE, 'more than 2 trailer fields', { maxHeaderCount: 2 })
  })

  it('emits a chunk data section before its CRLF has arrived, never past what was pushed', () => {
    const recorder = new EventRecorder()
    const framer = new RequestFramer(recorder.request)
    framer.push(bytes(`${POST}a\r\n01234`))
    assert.equal(recorder.bodyBytes().toString(), 'a\r\n01234')
    framer.push(bytes('56789\r'))
    assert.equal(recorder.bodyBytes().toString(), 'a\r\n0123456789\r')
    assert.equal(framer.state, 'body')
  })
})

describe('RequestFramer: pipelining, errors and zero copy', () => {
  it('parses pipelined requests in order from one chunk', () => {
    const { recorder } = frame(
      `GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcPOST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET /4 HTTP/1.0\r\n\r\n`,
    )
    assert.deepEqual(recorder.heads<RequestHead>().map((h) => h.target), ['/1', '/2', '/3', '/4'])
    assert.deepEqual(
      recorder.normalized().map((e) => (typeof e === 'object' && e !== null && 'head' in e ? 'head' : e)),
      ['head', 'end', 'head', { body: 'abc' }, 'end', 'head', { body: '1\r\nx\r\n0\r\n\r\n' }, 'end', 'head', 'end'],
    )
  })

  it('hands body bytes over as slices of the pushed chunk', () => {
    const input = bytes(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody`)
    const slices: Buffer[] = []
    new RequestFramer({ onHead() {}, onBody: (b) => slices.push(b), onMessageEnd() {} }).push(input)
    assert.equal(slices.length, 1)
    assert.equal(slices[0]!.buffer, input.buffer)
    assert.equal(slices[0]!.byteOffset, input.byteOffset + input.length - 4)
  })

  it('is dead after an error: every later push rethrows it', () => {
    const framer = new RequestFramer(new EventRecorder().request)
    const first = assertTunnelError(() => framer.push(bytes('GET / HTTP/1.1\r\n\r\n')), BAD)
    assert.equal(framer.state, 'dead')
    assert.throws(() => framer.push(bytes(`${GET}\r\n`)), (err) => err === first)
  })

  it('refuses to be re-entered from a callback', () => {
    const framer: RequestFramer = new RequestFramer({
      onHead: () => framer.push(bytes('x')),
      onBody() {},
      onMessageEnd() {},
    })
    assertTunnelError(() => framer.push(bytes(`${GET}\r\n`)), 'TUN_ERR_INTERNAL', 'RequestFramer.push() called from inside a callback')
  })

  it('validates limits', () => {
    assertTunnelError(() => new RequestFramer(new EventRecorder().request, { maxHeadBytes: -1 }), 'TUN_ERR_CONFIG_INVALID')
  })
})

describe('RequestFramer: upgrades', () => {
  const UPGRADE = `GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`

  it('holds bytes after an upgrade request and returns them on acceptance', () => {
    const { recorder, framer } = frame([`${UPGRADE}\x81\x05he`, 'llo'])
    assert.equal(framer.state, 'awaiting-upgrade')
    assert.deepEqual(recorder.normalized().slice(1), ['end'])
    assert.equal(framer.bufferedHeadBytes, 0)
    assert.equal(framer.upgradeAccepted().toString('latin1'), '\x81\x05hello')
    assert.equal(framer.state, 'upgraded')
    assertTunnelError(() => framer.push(bytes('x')), 'TUN_ERR_INTERNAL')
    assert.equal(framer.state, 'upgraded')
  })

  it('returns an empty buffer when nothing followed the upgrade request', () => {
    const { framer } = frame(UPGRADE)
    assert.equal(framer.upgradeAccepted().length, 0)
  })

  it('parses held bytes as requests when the upgrade is declined', () => {
    const { recorder, framer } = frame([`${UPGRADE}GET /next HTTP/1.1\r\n`, 'Host: a\r\n\r\nGET /third'])
    framer.upgradeDeclined()
    assert.deepEqual(recorder.heads<RequestHead>().map((h) => h.target), ['/ws', '/next'])
    assert.equal(framer.state, 'head')
    assert.equal(framer.bufferedHeadBytes, 10)
  })

  it('waits again when a declined upgrade is followed by another upgrade request', () => {
    const { recorder, framer } = frame(`${UPGRADE}${UPGRADE}raw`)
    framer.upgradeDeclined()
    assert.equal(recorder.heads().length, 2)
    assert.equal(framer.state, 'awaiting-upgrade')
    assert.equal(framer.upgradeAccepted().toString(), 'raw')
  })

  it('waits for the body of an upgrade request before holding', () => {
    const { recorder, framer } = frame(`POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 2\r\n\r\nabcd`)
    assert.deepEqual(recorder.normalized().slice(1), [{ body: 'ab' }, 'end'])
    assert.equal(framer.upgradeAccepted().toString(), 'cd')
  })

  it(`refuses more than ${MAX_BYTES_AWAITING_UPGRADE} held bytes`, () => {
    const { framer } = frame([UPGRADE, Buffer.alloc(MAX_BYTES_AWAITING_UPGRADE)])
    assertTunnelError(() => framer.push(Buffer.alloc(1)), BAD, `more than ${MAX_BYTES_AWAITING_UPGRADE} bytes sent before the upgrade was answered`)
  })

  it('refuses upgrade calls in other states', () => {
    const { framer } = frame(`${GET}\r\n`)
    assertTunnelError(() => framer.upgradeAccepted(), 'TUN_ERR_INTERNAL', "upgradeAccepted() in state 'head'")
    assertTunnelError(() => framer.upgradeDeclined(), 'TUN_ERR_INTERNAL', "upgradeDeclined() in state 'head'")
    assert.equal(framer.state, 'head')
  })
})
