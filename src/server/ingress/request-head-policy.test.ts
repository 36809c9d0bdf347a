import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { fuzzSeed } from '../../testing/fuzz.ts'
import type { RequestHead } from '../../protocol/http1/index.ts'
import { rewriteRequestHeaders, type ForwardingContext } from './request-head-policy.ts'

const ctx: ForwardingContext = { clientAddress: '203.0.113.7', proto: 'https' }
const HOST = 'TabcDefgh1.Example.COM:8443'

function head(overrides: Partial<RequestHead> & { headers: Array<[string, string]> }): RequestHead {
  const host = overrides.headers.find(([n]) => n.toLowerCase() === 'host')?.[1]
  return {
    method: 'GET',
    target: '/',
    versionMinor: 1,
    body: { kind: 'none' },
    keepAlive: true,
    upgrade: false,
    expectContinue: false,
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
  const out = rewriteRequestHeaders(head({ headers: [['Host', HOST]] }), { clientAddress: '::1', proto: 'http' })
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
    head({ method: 'POST', body: { kind: 'length', length: 5 }, headers: [['Host', HOST], ['Content-Length', '5']] }),
    ctx,
  )
  assert.deepEqual(values(out, 'content-length'), ['5'])
})

test('Transfer-Encoding is kept', () => {
  const out = rewriteRequestHeaders(
    head({ method: 'POST', body: { kind: 'chunked' }, headers: [['Host', HOST], ['Transfer-Encoding', 'chunked'], ['TE', 'trailers']] }),
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
      method: 'POST',
      body: { kind: 'length', length: 5 },
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
      method: 'POST',
      body: { kind: 'chunked' },
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

test('which fields go on matches the rule as written, whatever the letter case (fuzzed against a plain model)', () => {
  // The rule as written: a field goes on unless its name, lower-cased, is hop-by-hop or named in a
  // Connection field (except those Connection may not remove).
  const hop = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-apptunnel-credential']
  const kept = ['host', 'content-length', 'transfer-encoding', 'close', 'keep-alive', 'upgrade']
  const model = (fields: Array<[string, string]>): Array<[string, string]> => {
    const named = new Set<string>()
    for (const [n, v] of fields) if (n.toLowerCase() === 'connection') for (const t of v.split(',')) if (t.trim() !== '' && !kept.includes(t.trim().toLowerCase())) named.add(t.trim().toLowerCase())
    return fields.filter(([n]) => !hop.includes(n.toLowerCase()) && !named.has(n.toLowerCase()))
  }
  // Names of the same lengths as the hop-by-hop ones (User-Agent, Referer, Accept-Encoding …) and
  // the hop-by-hop ones in any letter case.
  const anyCase = (w: string) => fc.array(fc.boolean(), { minLength: w.length, maxLength: w.length }).map((up) => [...w].map((ch, i) => (up[i] ? ch.toUpperCase() : ch)).join(''))
  const name = fc.oneof(
    fc.constantFrom(...hop, ...kept).chain(anyCase),
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
