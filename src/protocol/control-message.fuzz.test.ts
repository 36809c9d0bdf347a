import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { MAX_REPLICAS, decodeControlMessage, encodeControlMessage, type ControlMessage, type ReplicaEndpoint } from './control-message.ts'
import { isCanonicalPin } from './security-key.ts'
import { MAX_CONTROL_PAYLOAD_BYTES } from './session-frame.ts'
import { fuzzSeed, outcome } from '../testing/fuzz.ts'

// Property-based fuzzing of the CONTROL payload decoder (what the server sends an agent): any bytes
// give a known message exactly when the documented reading says so, or a TUN_ERR_SESSION_PROTOCOL
// TunnelError; never another exception. FUZZ_SEED=<n> explores another sequence.

const seed = fuzzSeed(0xc0a7e)
const RUNS = 2500

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/

/** The documented reading of a replica list (control-message.ts): every entry right, or the whole message refused. */
function referenceReplicas(m: Record<string, unknown>): ControlMessage | undefined {
  if (typeof m['self'] !== 'string' || !NODE_ID.test(m['self'])) return undefined
  const list = m['replicas']
  if (!Array.isArray(list) || list.length > MAX_REPLICAS) return undefined
  const out: ReplicaEndpoint[] = []
  for (const r of list) {
    const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>
    if (typeof o['id'] !== 'string' || !NODE_ID.test(o['id']) || out.some((x) => x.id === o['id'])) return undefined
    if (typeof o['url'] !== 'string' || o['url'].length > 300 || !URL.canParse(o['url'])) return undefined
    const u = new URL(o['url'])
    if (u.protocol !== 'https:' || u.origin !== o['url']) return undefined
    if (o['pin'] === undefined) out.push({ id: o['id'], url: o['url'] })
    else if (typeof o['pin'] === 'string' && isCanonicalPin(o['pin'])) out.push({ id: o['id'], url: o['url'], pin: o['pin'] })
    else return undefined
  }
  return { t: 'replicas', self: m['self'], replicas: out }
}

/** The documented reading (control-message.ts). */
function reference(bytes: Buffer): ControlMessage | undefined {
  let v: unknown
  try {
    v = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
  if (m['t'] === 'ready') return { t: 'ready' }
  if (m['t'] === 'revoke' && typeof m['code'] === 'string' && typeof m['reason'] === 'string') return { t: 'revoke', code: m['code'], reason: m['reason'] }
  if (m['t'] === 'replicas') return referenceReplicas(m)
  return undefined
}

const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 }), fc.string({ maxLength: 40 }))
const nodeId = fc.oneof(fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/), fc.constantFrom('replica-1', 'a', 'x'.repeat(64)))
const pin = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64url'))
const origin = fc.oneof(fc.constantFrom('https://10.0.0.1:8443', 'https://tunnel.example.com', 'https://[::1]:9443'), fc.domain().map((d) => `https://${d}`))
const replica: fc.Arbitrary<ReplicaEndpoint> = fc
  .tuple(nodeId, origin, fc.option(pin, { nil: undefined }))
  .map(([id, url, p]): ReplicaEndpoint => (p === undefined ? { id, url } : { id, url, pin: p }))
const replicaList = fc
  .tuple(nodeId, fc.uniqueArray(replica, { selector: (r) => r.id, maxLength: 5 }))
  .map(([self, replicas]): ControlMessage => ({ t: 'replicas', self, replicas }))
const message: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.constant<ControlMessage>({ t: 'ready' }),
  fc.tuple(fc.oneof(fc.constantFrom('TUN_ERR_KEY_REJECTED', 'toString', '__proto__'), anyString), anyString).map(([code, reason]): ControlMessage => ({ t: 'revoke', code, reason })),
  replicaList,
)
const wrong = fc.oneof(fc.constantFrom(undefined, null, 0, -1, 1.5, '1', '', true, [], {}, 'READY', 'ready ', 'revoke\u0000', 'abort'), anyString, fc.jsonValue({ maxDepth: 1 }))
/** A replica entry with each field sometimes wrong. */
const nearReplica = fc.record(
  {
    id: fc.oneof({ arbitrary: nodeId, weight: 4 }, wrong),
    url: fc.oneof({ arbitrary: origin, weight: 4 }, fc.constantFrom('http://a.example', 'https://a.example/', 'https://a.example/x', 'https://a.example?', 'https://', 'https://a b'), wrong),
    pin: fc.oneof({ arbitrary: pin, weight: 3 }, fc.constant(undefined), fc.constantFrom('x', Buffer.alloc(32).toString('base64'), 'A'.repeat(43)), wrong),
  },
  { requiredKeys: [], noNullPrototype: true },
)
const nearMessage = fc
  .record(
    {
      t: fc.oneof({ arbitrary: fc.constantFrom('ready', 'revoke', 'replicas'), weight: 4 }, wrong),
      code: fc.oneof({ arbitrary: anyString, weight: 3 }, wrong),
      reason: fc.oneof({ arbitrary: anyString, weight: 3 }, wrong),
      self: fc.oneof({ arbitrary: nodeId, weight: 3 }, wrong),
      replicas: fc.oneof({ arbitrary: fc.array(nearReplica, { maxLength: 4 }), weight: 3 }, fc.array(replica, { minLength: 33, maxLength: 34 }), wrong),
    },
    { requiredKeys: [], noNullPrototype: true },
  )
  .map((r) => Buffer.from(JSON.stringify(r), 'utf8'))
const payload = fc.oneof(
  { arbitrary: message.map(encodeControlMessage), weight: 4 },
  { arbitrary: nearMessage, weight: 4 },
  fc.constantFrom('', ' ', '{}', 'null', '[]', '{"t":"ready"}{"t":"ready"}', '\ufeff{"t":"ready"}', '{"__proto__":{"t":"ready"}}').map((s) => Buffer.from(s, 'utf8')),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
)

test('any payload: the documented message, or TUN_ERR_SESSION_PROTOCOL', () => {
  fc.assert(
    fc.property(payload, (bytes) => {
      const expected = reference(bytes)
      const got = outcome(() => decodeControlMessage(bytes), ['TUN_ERR_SESSION_PROTOCOL'])
      if (expected === undefined) assert.ok('error' in got, `refused: ${bytes.toString('utf8')}`)
      else assert.deepEqual(got, { value: expected })
    }),
    { numRuns: RUNS, seed },
  )
})

test('encode → decode round-trips every message, and every encoding fits one CONTROL frame', () => {
  const big = fc.tuple(anyString, fc.integer({ min: 0, max: 6000 })).map(([code, n]): ControlMessage => ({ t: 'revoke', code, reason: 'é'.repeat(n) }))
  fc.assert(
    fc.property(fc.oneof(message, big), (m) => {
      const b = encodeControlMessage(m)
      assert.ok(b.length <= MAX_CONTROL_PAYLOAD_BYTES, `${b.length} bytes`)
      const back = decodeControlMessage(b)
      if (b.length < 1000 || m.t === 'ready') assert.deepEqual(back, m)
      else assert.equal(back.t, 'revoke')
    }),
    { numRuns: 1000, seed },
  )
})
