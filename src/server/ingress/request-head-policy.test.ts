import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { fuzzSeed } from '../../testing/fuzz.ts'
import { parseRequestHead } from '../../protocol/http1/parse-request-head.ts'
import { serializeRequestHead, type RequestHead } from '../../protocol/http1/index.ts'
import { FORWARDING_FIELDS, forwardRequestHead, forwardingContext, rewriteRequestHeaders, type ForwardingContext, type RewrittenHead } from './request-head-policy.ts'

const ctx: ForwardingContext = forwardingContext('203.0.113.7', 'https')
const HOST = 'TabcDefgh1.Example.COM:8443'

function head(overrides: Partial<RewrittenHead> & { headers: Array<[string, string]> }): RewrittenHead {
  const host = overrides.headers.find(([n]) => n.toLowerCase() === 'host')?.[1]
  return {
    versionMinor: 1,
    keepAlive: true,
    upgrade: false,
    host,
    ...overrides,
  }
}

function names(out: Array<[string, string]>): string[] {
  return out.map(([n]) => n.toLowerCase())
}

function values(out: Array<[string, string]>, name: string): string[] {
  return out.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v)
}

test('hop-by-hop fields are dropped', () => {
  const out = rewriteRequestHeaders(
    head({
      headers: [
        ['Host', HOST],
        ['Connection', 'keep-alive'],
        ['Keep-Alive', 'timeout=5'],
        ['Proxy-Connection', 'keep-alive'],
        ['TE', 'trailers'],
        ['Trailer', 'X-Checksum'],
        ['Upgrade', 'websocket'],
        ['Proxy-Authorization', 'Basic c2VjcmV0'],
        ['Proxy-Authenticate', 'Basic'],
        ['Accept', '*/*'],
      ],
    }),
    ctx,
  )
  for (const n of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']) {
    assert.ok(!names(out).includes(n), `${n} must be dropped`)
  }
  assert.deepEqual(values(out, 'accept'), ['*/*'])
})

test('hop-by-hop names match case-insensitively', () => {
  const out = rewriteRequestHeaders(
    head({ headers: [['host', HOST], ['CONNECTION', 'Keep-Alive'], ['kEeP-aLiVe', 'max=3'], ['proxy-AUTHORIZATION', 'x']] }),
    ctx,
  )
  assert.deepEqual(names(out), ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])
})

test('fields named in Connection are dropped', () => {
  const out = rewriteRequestHeaders(
    head({
      headers: [
        ['Host', HOST],
        ['Connection', 'X-Secret-Hop, keep-alive ,  x-other'],
        ['X-Secret-Hop', '1'],
        ['x-other', '2'],
        ['X-Kept', '3'],
      ],
    }),
    ctx,
  )
  assert.ok(!names(out).includes('x-secret-hop'))
  assert.ok(!names(out).includes('x-other'))
  assert.deepEqual(values(out, 'x-kept'), ['3'])
})

test('fields named in a second Connection field are dropped too', () => {
  const out = rewriteRequestHeaders(
    head({ headers: [['Host', HOST], ['X-A', '1'], ['Connection', 'keep-alive'], ['Connection', 'X-A']] }),
    ctx,
  )
  assert.ok(!names(out).includes('x-a'))
})

test('incoming X-Forwarded-* and Forwarded are replaced, not appended', () => {
  const out = rewriteRequestHeaders(
    head({
      headers: [
        ['Host', HOST],
        ['X-Forwarded-For', '10.0.0.1'],
        ['x-forwarded-proto', 'http'],
        ['X-Forwarded-Host', 'evil.example'],
        ['X-Forwarded-Port', '1234'],
        ['Forwarded', 'for=10.0.0.1;proto=http'],
      ],
    }),
    ctx,
  )
  assert.deepEqual(values(out, 'x-forwarded-for'), ['203.0.113.7'])
  assert.deepEqual(values(out, 'x-forwarded-proto'), ['https'])
  assert.deepEqual(values(out, 'x-forwarded-host'), [HOST])
  assert.deepEqual(values(out, 'x-forwarded-port'), [])
  assert.deepEqual(values(out, 'forwarded'), [])
  for (const [, v] of out) {
    assert.ok(!v.includes('10.0.0.1') && !v.includes('evil.example'), `spoofed value leaked: ${v}`)
  }
})

test('proto comes from the context', () => {
  const out = rewriteRequestHeaders(head({ headers: [['Host', HOST]] }), forwardingContext('::1', 'http'))
  assert.deepEqual(values(out, 'x-forwarded-proto'), ['http'])
  assert.deepEqual(values(out, 'x-forwarded-for'), ['::1'])
})

test('Host is kept byte for byte, in place', () => {
  const out = rewriteRequestHeaders(head({ headers: [['A', '1'], ['hOsT', HOST], ['B', '2']] }), ctx)
  assert.deepEqual(out.slice(0, 3), [['A', '1'], ['hOsT', HOST], ['B', '2']])
})

test('no X-Forwarded-Host without a Host (HTTP/1.0)', () => {
  const out = rewriteRequestHeaders(head({ versionMinor: 0, keepAlive: false, headers: [['Accept', '*/*']] }), ctx)
  assert.deepEqual(values(out, 'x-forwarded-host'), [])
})

test('other fields keep their order and letter case', () => {
  const headers: Array<[string, string]> = [['Host', HOST], ['accept', 'text/html'], ['X-Custom', 'a, b'], ['Cookie', 'a=1'], ['Cookie', 'b=2']]
  const out = rewriteRequestHeaders(head({ headers }), ctx)
  assert.deepEqual(out.slice(0, headers.length), headers)
})

test('Content-Length is kept', () => {
  const out = rewriteRequestHeaders(
    head({ headers: [['Host', HOST], ['Content-Length', '5']] }),
    ctx,
  )
  assert.deepEqual(values(out, 'content-length'), ['5'])
})

test('Transfer-Encoding is kept', () => {
  const out = rewriteRequestHeaders(
    head({ headers: [['Host', HOST], ['Transfer-Encoding', 'chunked'], ['TE', 'trailers']] }),
    ctx,
  )
  assert.deepEqual(values(out, 'transfer-encoding'), ['chunked'])
  assert.deepEqual(values(out, 'te'), [])
})

test('upgrade requests get Connection: Upgrade and the Upgrade value', () => {
  const out = rewriteRequestHeaders(
    head({
      upgrade: true,
      headers: [
        ['Host', HOST],
        ['Connection', 'keep-alive, Upgrade'],
        ['Upgrade', 'websocket'],
        ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
        ['Sec-WebSocket-Version', '13'],
      ],
    }),
    ctx,
  )
  assert.deepEqual(values(out, 'connection'), ['Upgrade'])
  assert.deepEqual(values(out, 'upgrade'), ['websocket'])
  assert.deepEqual(values(out, 'sec-websocket-key'), ['dGhlIHNhbXBsZSBub25jZQ=='])
  assert.deepEqual(values(out, 'sec-websocket-version'), ['13'])
})

test('Upgrade without an upgrade request is dropped', () => {
  const out = rewriteRequestHeaders(head({ upgrade: false, headers: [['Host', HOST], ['Upgrade', 'h2c']] }), ctx)
  assert.deepEqual(values(out, 'upgrade'), [])
  assert.deepEqual(values(out, 'connection'), [])
})

test('HTTP/1.0 keep-alive gets Connection: keep-alive', () => {
  const out = rewriteRequestHeaders(
    head({ versionMinor: 0, keepAlive: true, headers: [['Host', HOST], ['Connection', 'Keep-Alive'], ['Keep-Alive', 'timeout=5']] }),
    ctx,
  )
  assert.deepEqual(values(out, 'connection'), ['keep-alive'])
  assert.deepEqual(values(out, 'keep-alive'), [])
})

test('HTTP/1.1 keep-alive gets no Connection field', () => {
  const out = rewriteRequestHeaders(head({ keepAlive: true, headers: [['Host', HOST]] }), ctx)
  assert.deepEqual(values(out, 'connection'), [])
})

test('non-keep-alive requests get Connection: close', () => {
  const out11 = rewriteRequestHeaders(head({ keepAlive: false, headers: [['Host', HOST], ['Connection', 'close']] }), ctx)
  assert.deepEqual(values(out11, 'connection'), ['close'])
  const out10 = rewriteRequestHeaders(head({ versionMinor: 0, keepAlive: false, headers: [['Host', HOST]] }), ctx)
  assert.deepEqual(values(out10, 'connection'), ['close'])
})

test('the input head is not modified', () => {
  const headers: Array<[string, string]> = [['Host', HOST], ['Connection', 'x-a'], ['X-A', '1']]
  const h = head({ headers })
  const snapshot = JSON.stringify(h)
  rewriteRequestHeaders(h, ctx)
  assert.equal(JSON.stringify(h), snapshot)
})

test('Connection cannot remove Host or the framing fields (request smuggling)', () => {
  const out = rewriteRequestHeaders(
    head({
      headers: [
        ['Host', HOST],
        ['Content-Length', '5'],
        ['Connection', 'Content-Length, Host, Transfer-Encoding, X-Other'],
        ['X-Other', '1'],
      ],
    }),
    ctx,
  )
  assert.deepEqual(values(out, 'content-length'), ['5'])
  assert.deepEqual(values(out, 'host'), [HOST])
  assert.deepEqual(values(out, 'x-other'), [])
  const chunked = rewriteRequestHeaders(
    head({
      headers: [
        ['Host', HOST],
        ['Transfer-Encoding', 'chunked'],
        ['Connection', 'transfer-encoding'],
      ],
    }),
    ctx,
  )
  assert.deepEqual(values(chunked, 'transfer-encoding'), ['chunked'])
})

/** The names the rule drops, as the rule is written (not read from the code under test). */
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-apptunnel-credential']

/** `w` with each letter in either case. */
function anyCase(w: string): fc.Arbitrary<string> {
  return fc.array(fc.boolean(), { minLength: w.length, maxLength: w.length }).map((up) => [...w].map((ch, i) => (up[i] ? ch.toUpperCase() : ch)).join(''))
}

test('which fields go on matches the rule as written, whatever the letter case (fuzzed against a plain model)', () => {
  // The rule as written: a field goes on unless its name, lower-cased, is hop-by-hop or named in a
  // Connection field (except those Connection may not remove).
  const kept = ['host', 'content-length', 'transfer-encoding', 'close', 'keep-alive', 'upgrade']
  const model = (fields: Array<[string, string]>): Array<[string, string]> => {
    const named = new Set<string>()
    for (const [n, v] of fields) if (n.toLowerCase() === 'connection') for (const t of v.split(',')) if (t.trim() !== '' && !kept.includes(t.trim().toLowerCase())) named.add(t.trim().toLowerCase())
    return fields.filter(([n]) => !HOP.includes(n.toLowerCase()) && !named.has(n.toLowerCase()))
  }
  // Names of the same lengths as the hop-by-hop ones (User-Agent, Referer, Accept-Encoding …) and
  // the hop-by-hop ones in any letter case.
  const name = fc.oneof(
    fc.constantFrom(...HOP, ...kept).chain(anyCase),
    fc.constantFrom('User-Agent', 'Referer', 'Accept-Encoding', 'Accept-Language', 'X-Request-Id', 'Cookie', 'te-x', 'Forwarded-X', 'x-forwarded-fox', 'X-A', 'x-b'),
  )
  const connectionValue = fc.array(fc.oneof(name, fc.constantFrom(' ', '')), { maxLength: 4 }).map((ns) => ns.join(', '))
  const fields = fc.array(fc.oneof(fc.tuple(name, fc.constantFrom('1', 'v')), fc.tuple(fc.constant('Connection').chain(anyCase), connectionValue)), { maxLength: 12 })
  fc.assert(
    fc.property(fields, (hs) => {
      const headers: Array<[string, string]> = [['Host', HOST], ...hs]
      const out = rewriteRequestHeaders(head({ headers }), ctx)
      // What the ingress adds comes after the fields it keeps: Connection for 1.0/close/upgrade, then X-Forwarded-*.
      assert.deepEqual(out.slice(0, out.length - 3), model(headers))
    }),
    { seed: fuzzSeed(0x5eed41), numRuns: 2000 },
  )
})

/** A head as the ingress's framer parses it: with the forwarding fields flagged. */
function parsed(text: string): RequestHead {
  return parseRequestHead(Buffer.from(text, 'latin1'), 0, text, FORWARDING_FIELDS)
}

test('a head with nothing to drop goes as received, with the relay fields before its blank line', () => {
  const text = `GET /a?b=1 HTTP/1.1\r\nHost: ${HOST}\r\nAccept:  text/html \t\r\nCookie:a=1\r\n\r\n`
  const out = forwardRequestHead(parsed(text), ctx).toString('latin1')
  assert.equal(out, `GET /a?b=1 HTTP/1.1\r\nHost: ${HOST}\r\nAccept:  text/html \t\r\nCookie:a=1\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: ${HOST}\r\n\r\n`)
})

test('an HTTP/1.0 head with nothing to drop gets Connection: close, as a rewritten one does', () => {
  const out = forwardRequestHead(parsed('GET / HTTP/1.0\r\nAccept: */*\r\n\r\n'), ctx).toString('latin1')
  assert.equal(out, 'GET / HTTP/1.0\r\nAccept: */*\r\nConnection: close\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n')
})

test('a head with a field to drop is rewritten: the spoofed and hop-by-hop fields do not reach the app', () => {
  const text = `GET / HTTP/1.1\r\nHost: ${HOST}\r\nx-forwarded-FOR: 10.0.0.1\r\nAccept: */*\r\n\r\n`
  const out = forwardRequestHead(parsed(text), ctx).toString('latin1')
  assert.equal(out, `GET / HTTP/1.1\r\nHost: ${HOST}\r\nAccept: */*\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: ${HOST}\r\n\r\n`)
})

test('a head forwarded as received means to the app what the rewritten head means (fuzzed)', () => {
  // Mostly fields that go on, of the same lengths as the hop-by-hop names among others.
  const name = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('User-Agent', 'Referer', 'Accept-Encoding', 'Accept-Language', 'X-Request-Id', 'Cookie', 'Accept', 'X-Forwarded-Fox', 'Tt', 'trailers', 'X-A') },
    { weight: 1, arbitrary: fc.constantFrom(...HOP).chain(anyCase) },
  )
  const ows = fc.constantFrom('', ' ', '  ', '\t', ' \t ')
  const value = fc.constantFrom('1', 'keep-alive', 'close', 'x-a, te', 'a=1; b=2', 'text/html,*/*;q=0.8', 'websocket', '\xe9t\xe9', '')
  const field = fc.tuple(name, ows, value, ows).map(([n, a, v, b]) => `${n}:${a}${v}${v === '' ? '' : b}\r\n`)
  const request = fc.record({
    method: fc.constantFrom('GET', 'POST', 'HEAD', 'OPTIONS', 'DELETE'),
    target: fc.constantFrom('/', '/a/b?c=d&e', '/%20x'),
    minor: fc.constantFrom(0, 1),
    host: fc.boolean(),
    fields: fc.array(field, { maxLength: 8 }),
  })
  let asReceived = 0
  let rewritten = 0
  fc.assert(
    fc.property(request, ({ method, target, minor, host, fields }) => {
      const text = `${method} ${target} HTTP/1.${minor}\r\n${host || minor === 1 ? `Host:${HOST}\r\n` : ''}${fields.join('')}\r\n`
      const head = parsed(text)
      const out = forwardRequestHead(head, ctx)
      const expected = serializeRequestHead({ method: head.method, target: head.target, versionMinor: head.versionMinor, headers: rewriteRequestHeaders(head, ctx) })
      if (head.hasFieldIn(FORWARDING_FIELDS)) rewritten++
      else {
        asReceived++
        assert.ok(out.toString('latin1').startsWith(text.slice(0, -2)), 'a head with nothing to drop keeps its bytes')
      }
      const a = parsed(out.toString('latin1'))
      const b = parsed(expected.toString('latin1'))
      assert.deepEqual({ ...a, headers: a.headers }, { ...b, headers: b.headers })
    }),
    { seed: fuzzSeed(0x5eed42), numRuns: 3000 },
  )
  // Both ways were taken, many times each.
  assert.ok(asReceived > 500 && rewritten > 500, `as received ${asReceived}, rewritten ${rewritten}`)
})
