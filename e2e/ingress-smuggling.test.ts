import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { rawExchange } from '../src/testing/raw-exchange.ts'
import { startConnectedTunnel, type ConnectedTunnel } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const exchange = rawExchange

/**
 * Every attempt carries a second request to /smuggled that a lenient parser somewhere along the
 * way could see: it must never reach the app. `reachesApp` says whether the first request's head
 * may reach the app at all: for a broken body the head is sent on before the body is read, so
 * the app may see it start (and then aborted), or not at all when the relay was cut first.
 */
interface Attempt {
  name: string
  head: string
  status: number
  code: string
  reachesApp: boolean
  /**
   * Valid requests before the refused bytes, each answered by the app first: answers leave in
   * request order, so the refusal comes after theirs (RFC 9112 §9.3.2).
   */
  answeredFirst?: number
}

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n'

const attempts: Attempt[] = [
  // Two framings at once (RFC 9112 §6.3: a request with both is an attack or a broken client)
  { name: 'Content-Length and Transfer-Encoding', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', reachesApp: false },
  { name: 'Transfer-Encoding then Content-Length', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', reachesApp: false },
  { name: 'two different Content-Length fields', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', reachesApp: false },
  { name: 'a Content-Length list', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0, 44\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'Content-Length with a sign', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: +0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'Content-Length in hex', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0x0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  // Transfer codings other servers read differently
  { name: 'chunked not last', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', reachesApp: false },
  { name: 'a coding that only looks like chunked', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', reachesApp: false },
  { name: 'a coding the ingress does not decode before chunked', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 501, code: 'TUN_ERR_HTTP_NOT_IMPLEMENTED', reachesApp: false },
  { name: 'chunked twice', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_AMBIGUOUS_FRAMING', reachesApp: false },
  { name: 'Transfer-Encoding in HTTP/1.0', head: 'POST /sha256 HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'Transfer-Encoding with a space before the colon', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'Transfer-Encoding folded over two lines (obs-fold)', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  // Line endings other parsers accept
  { name: 'bare LF between fields', head: 'GET /hello HTTP/1.1\r\nHost: {host}\nContent-Length: 44\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'bare LF ending the request line', head: 'GET /hello HTTP/1.1\nHost: {host}\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'bare CR inside a field', head: 'GET /hello HTTP/1.1\r\nHost: {host}\r\nX-A: 1\rContent-Length: 44\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'NUL in a field value', head: 'GET /hello HTTP/1.1\r\nHost: {host}\r\nX-A: a\x00b\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  // Routing confusion
  { name: 'two Host fields', head: 'GET /hello HTTP/1.1\r\nHost: {host}\r\nHost: other.localhost\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'no Host in HTTP/1.1', head: 'GET /hello HTTP/1.1\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'absolute-form target naming another host', head: 'GET http://other.localhost/hello HTTP/1.1\r\nHost: {host}\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: false },
  { name: 'CONNECT through the ingress', head: 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: {host}\r\n\r\n' + SMUGGLED, status: 501, code: 'TUN_ERR_HTTP_NOT_IMPLEMENTED', reachesApp: false },
  // Content-Length is kept, so its 44 bytes (most of the smuggled request) are the POST's body; the rest is garbage.
  { name: 'Connection naming Content-Length (hop-by-hop removal of framing)', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nConnection: content-length\r\nContent-Length: 44\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: true, answeredFirst: 1 },
  { name: 'HTTP/2 preface on the HTTP/1 port', head: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SMUGGLED, status: 505, code: 'TUN_ERR_HTTP_VERSION', reachesApp: false },
  // Broken chunked bodies: the head was sent on before the body, the app sees it aborted
  { name: 'chunk size that is not hex', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: true },
  { name: 'chunk size that overflows', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: true },
  { name: 'chunk size line ending in bare LF', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: true },
  { name: 'chunk data longer than its size', head: 'POST /sha256 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n' + SMUGGLED, status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', reachesApp: true },
]

describe('request smuggling attempts at the ingress', () => {
  let fixture: ConnectedTunnel

  before(async () => {
    fixture = await startConnectedTunnel({}, 'smuggling')
  })
  after(() => fixture.close())

  for (const a of attempts) {
    test(`${a.name} → ${a.status} ${a.code}`, async () => {
      const seenBefore = fixture.upstream.seen.length
      const all = await exchange(fixture.server.ingressAddress.port, a.head.replaceAll('{host}', fixture.tunnel.hostHeader))
      // No body here contains a status line: a JSON error or a hex digest.
      const answers = all.split(/(?=HTTP\/1\.1 \d{3} )/)
      assert.equal(answers.length, (a.answeredFirst ?? 0) + 1, `answers: ${JSON.stringify(all.slice(0, 600))}`)
      for (const earlier of answers.slice(0, -1)) assert.match(earlier, /^HTTP\/1\.1 200 /)
      const out = answers[answers.length - 1]!
      const statusLine = out.slice(0, out.indexOf('\r\n'))
      assert.match(statusLine, new RegExp(`^HTTP/1\\.1 ${a.status} `), `answer was ${JSON.stringify(out.slice(0, 300))}`)
      const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } }
      assert.equal(body.error.code, a.code, body.error.message)
      const length = Number(/\r\nContent-Length: (\d+)\r\n/i.exec(out)?.[1])
      assert.equal(out.length, out.indexOf('\r\n\r\n') + 4 + length, 'one answer, then the connection is closed')
      const seen = fixture.upstream.seen.slice(seenBefore).map((r) => r.url)
      assert.ok(!seen.includes('/smuggled'), 'the smuggled request never reaches the app')
      assert.ok(seen.length <= (a.reachesApp ? 1 : 0), `the app saw ${JSON.stringify(seen)}`)
    })
  }

  test('a well-formed pipelined pair is two requests, each answered', async () => {
    const seenBefore = fixture.upstream.seen.length
    const host = fixture.tunnel.hostHeader
    const out = await exchange(
      fixture.server.ingressAddress.port,
      `POST /sha256 HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    )
    assert.equal((out.match(/HTTP\/1\.1 200 /g) ?? []).length, 2, out)
    assert.deepEqual(fixture.upstream.seen.slice(seenBefore).map((r) => r.url), ['/sha256', '/hello'])
  })
})
