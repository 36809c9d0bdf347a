import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodeControlMessage, encodeControlMessage, type ControlMessage } from './control-message.ts'
import { MAX_CONTROL_PAYLOAD_BYTES } from './session-frame.ts'
import { fuzzSeed, outcome } from '../testing/fuzz.ts'

// Property-based fuzzing of the CONTROL payload decoder (what the server sends an agent): any bytes
// give a known message exactly when the documented reading says so, or a TUN_ERR_SESSION_PROTOCOL
// TunnelError; never another exception. FUZZ_SEED=<n> explores another sequence.

const seed = fuzzSeed(0xc0a7e)
const RUNS = 2500

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
  return undefined
}

const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 }), fc.string({ maxLength: 40 }))
const message: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.constant<ControlMessage>({ t: 'ready' }),
  fc.tuple(fc.oneof(fc.constantFrom('TUN_ERR_KEY_REJECTED', 'toString', '__proto__'), anyString), anyString).map(([code, reason]): ControlMessage => ({ t: 'revoke', code, reason })),
)
const wrong = fc.oneof(fc.constantFrom(undefined, null, 0, -1, 1.5, '1', '', true, [], {}, 'READY', 'ready ', 'revoke\u0000', 'abort'), anyString, fc.jsonValue({ maxDepth: 1 }))
const nearMessage = fc
  .record(
    {
      t: fc.oneof({ arbitrary: fc.constantFrom('ready', 'revoke'), weight: 4 }, wrong),
      code: fc.oneof({ arbitrary: anyString, weight: 3 }, wrong),
      reason: fc.oneof({ arbitrary: anyString, weight: 3 }, wrong),
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
