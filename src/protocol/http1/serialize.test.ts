import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError } from '../../errors/index.ts'
import type { RequestHead } from './request-head.ts'
import { RequestFramer } from './request-framer.ts'
import { ResponseFramer } from './response-framer.ts'
import type { ResponseHead } from './response-head.ts'
import { serializeErrorResponse } from './serialize-error-response.ts'
import { serializeRequestHead } from './serialize-request-head.ts'
import { assertTunnelError } from '../../testing/http1/assert-tunnel-error.ts'

describe('serializeRequestHead', () => {
  it('writes latin1 with CRLF line ends and a blank line', () => {
    const out = serializeRequestHead({
      method: 'GET',
      target: '/a?b',
      versionMinor: 1,
      headers: [['Host', 'a.example'], ['X-Obs', 'caf\xe9'], ['X-Empty', '']],
    })
    assert.equal(out.toString('latin1'), 'GET /a?b HTTP/1.1\r\nHost: a.example\r\nX-Obs: caf\xe9\r\nX-Empty: \r\n\r\n')
    assert.equal(out.length, out.toString('latin1').length)
  })

  it('round-trips through the RequestFramer', () => {
    const source = 'POST /x HTTP/1.0\r\nHost:  h \r\nContent-Length: 2\r\n\r\nab'
    let parsed: RequestHead | undefined
    new RequestFramer({ onHead: (h) => (parsed = h), onBody() {}, onMessageEnd() {} }).push(Buffer.from(source, 'latin1'))
    assert.equal(serializeRequestHead(parsed!).toString('latin1'), 'POST /x HTTP/1.0\r\nHost: h\r\nContent-Length: 2\r\n\r\n')
  })

  it('refuses anything that could inject lines', () => {
    const base = { method: 'GET', target: '/', versionMinor: 1 as const, headers: [] as Array<[string, string]> }
    assertTunnelError(() => serializeRequestHead({ ...base, headers: [['X', 'a\r\nEvil: 1']] }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, headers: [['X', 'a\nb']] }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, headers: [['X', '\u0100']] }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, headers: [['X Y', 'a']] }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, headers: [['', 'a']] }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, method: 'GET /' }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, target: '/a b' }), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeRequestHead({ ...base, target: '' }), 'TUN_ERR_INTERNAL')
  })
})

describe('serializeErrorResponse', () => {
  it('writes a closing JSON response with the standard reason phrase', () => {
    const err = new TunnelError('TUN_ERR_HTTP_AMBIGUOUS_FRAMING', 'both Content-Length and Transfer-Encoding present')
    const out = serializeErrorResponse(err.httpStatus, err, [['X-Request-Id', 'r1']])
    const text = out.toString('utf8')
    const [head, body] = text.split('\r\n\r\n') as [string, string]
    assert.deepEqual(head.split('\r\n'), [
      'HTTP/1.1 400 Bad Request',
      'Content-Type: application/json; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
      'Cache-Control: no-store',
      'X-Request-Id: r1',
    ])
    assert.deepEqual(JSON.parse(body), { error: { code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', message: 'both Content-Length and Transfer-Encoding present' } })
  })

  it('counts Content-Length in bytes and frames cleanly for a response parser', () => {
    const out = serializeErrorResponse(431, { message: 'héllo ✓' })
    const events: unknown[] = []
    const framer = new ResponseFramer({
      onHead: (h: ResponseHead) => events.push([h.statusCode, h.reason, h.keepAlive, h.body]),
      onBody: (b) => events.push(b.toString('utf8')),
      onMessageEnd: () => events.push('end'),
      onUpgrade() {},
    })
    framer.push(out)
    assert.deepEqual(events, [
      [431, 'Request Header Fields Too Large', false, { kind: 'length', length: Buffer.byteLength('{"message":"héllo ✓"}') }],
      '{"message":"héllo ✓"}',
      'end',
    ])
  })

  it('uses the reason phrases of the statuses an edge answers with', () => {
    const reasons: Array<[number, string]> = [
      [400, 'Bad Request'], [404, 'Not Found'], [408, 'Request Timeout'], [413, 'Content Too Large'], [414, 'URI Too Long'],
      [426, 'Upgrade Required'], [429, 'Too Many Requests'], [500, 'Internal Server Error'], [501, 'Not Implemented'],
      [502, 'Bad Gateway'], [503, 'Service Unavailable'], [504, 'Gateway Timeout'], [505, 'HTTP Version Not Supported'],
    ]
    for (const [status, reason] of reasons) {
      assert.equal(serializeErrorResponse(status, null).toString('latin1').split('\r\n')[0], `HTTP/1.1 ${status} ${reason}`)
    }
    assert.equal(serializeErrorResponse(599, null).toString('latin1').split('\r\n')[0], 'HTTP/1.1 599 ')
  })

  it('refuses odd statuses and headers it sets itself', () => {
    assertTunnelError(() => serializeErrorResponse(99, null), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeErrorResponse(400.5, null), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeErrorResponse(400, null, [['content-length', '0']]), 'TUN_ERR_INTERNAL')
    assertTunnelError(() => serializeErrorResponse(400, null, [['X', 'a\r\nb']]), 'TUN_ERR_INTERNAL')
    assert.equal(serializeErrorResponse(400, undefined).toString().endsWith('\r\n\r\nnull'), true)
  })
})
