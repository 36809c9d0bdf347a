import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { TunnelError } from '../errors/index.ts'
import { ControlMessageDecoder, MAX_CONTROL_LINE_BYTES, encodeControlMessage, type ControlMessage } from './control-message.ts'
import { fuzzSeed, cutsOf } from '../testing/fuzz.ts'

// Property-based fuzzing of the session control stream decoder (what the server sends an agent):
// any byte stream, cut into any chunks, gives the messages a one-shot reading of its LF-terminated
// JSON lines gives, or a TUN_ERR_HANDSHAKE_BAD_REQUEST TunnelError saying what is wrong; never
// another exception. FUZZ_SEED=<n> explores another sequence; fast-check prints the seed of a failure.

const seed = fuzzSeed(0xc0a7e)
const RUNS = 2500

/** The documented reading (control-message.ts header) of a whole stream at once. */
function reference(bytes: Buffer): { messages: ControlMessage[]; refused: boolean } {
  const messages: ControlMessage[] = []
  let start = 0
  for (let lf = bytes.indexOf(0x0a); lf >= 0; lf = bytes.indexOf(0x0a, start)) {
    const line = bytes.subarray(start, lf)
    start = lf + 1
    if (line.length > MAX_CONTROL_LINE_BYTES) return { messages, refused: true }
    let v: unknown
    try {
      v = JSON.parse(line.toString('utf8'))
    } catch {
      return { messages, refused: true }
    }
    const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
    if (m['t'] === 'abort' && typeof m['id'] === 'number' && Number.isSafeInteger(m['id']) && m['id'] > 0) messages.push({ t: 'abort', id: m['id'] })
    else if (m['t'] === 'revoke' && typeof m['code'] === 'string' && typeof m['reason'] === 'string') messages.push({ t: 'revoke', code: m['code'], reason: m['reason'] })
    else return { messages, refused: true }
  }
  return { messages, refused: bytes.length - start > MAX_CONTROL_LINE_BYTES }
}

function assertRefusal(err: unknown): asserts err is TunnelError {
  assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
  assert.equal(err.code, 'TUN_ERR_HANDSHAKE_BAD_REQUEST')
  assert.match(err.message, /^control message (too long|is not JSON)$|^invalid control message$/)
}

/** Feeds `bytes` cut at `cuts`; returns every message pushed out and whether the decoder refused. */
function feed(bytes: Buffer, cuts: number[]): { messages: ControlMessage[]; refused: boolean; pending: number } {
  const d = new ControlMessageDecoder()
  const messages: ControlMessage[] = []
  let at = 0
  let lastLf = -1
  for (const cut of cuts) {
    const chunk = bytes.subarray(at, cut)
    try {
      messages.push(...d.push(chunk))
    } catch (err) {
      assertRefusal(err)
      return { messages, refused: true, pending: 0 }
    }
    const lf = chunk.lastIndexOf(0x0a)
    if (lf >= 0) lastLf = at + lf
    at = cut
  }
  return { messages, refused: false, pending: at - lastLf - 1 }
}

// ---- generators -------------------------------------------------------------------------------

const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 }), fc.string({ maxLength: 40 }))
const id = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(1, Number.MAX_SAFE_INTEGER), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }))
const message: fc.Arbitrary<ControlMessage> = fc.oneof(
  id.map((n): ControlMessage => ({ t: 'abort', id: n })),
  fc.tuple(fc.oneof(fc.constantFrom('TUN_ERR_KEY_REJECTED', 'TUN_ERR_TUNNEL_NOT_FOUND', 'toString', '__proto__'), anyString), anyString).map(([code, reason]): ControlMessage => ({ t: 'revoke', code, reason })),
)
const wrong = fc.oneof(fc.constantFrom(undefined, null, 0, -1, 1.5, 2 ** 53, '1', '', true, [], {}, 'ABORT', 'abort ', 'revoke\u0000'), anyString, fc.jsonValue({ maxDepth: 1 }))
const nearMessage = fc
  .record(
    {
      t: fc.oneof({ arbitrary: fc.constantFrom('abort', 'revoke'), weight: 4 }, wrong),
      id: fc.oneof({ arbitrary: id, weight: 3 }, wrong),
      code: fc.oneof({ arbitrary: anyString, weight: 3 }, wrong),
      reason: fc.oneof({ arbitrary: anyString, weight: 3 }, wrong),
    },
    { noNullPrototype: true },
  )
  .map((r) => JSON.stringify(r))
/** A line near the length limit: a revoke whose reason makes the line `n` bytes. */
const longLine = fc.integer({ min: MAX_CONTROL_LINE_BYTES - 3, max: MAX_CONTROL_LINE_BYTES + 3 }).map((n) => {
  const head = encodeControlMessage({ t: 'revoke', code: 'TUN_ERR_KEY_REJECTED', reason: '' }).length - 1
  return JSON.stringify({ t: 'revoke', code: 'TUN_ERR_KEY_REJECTED', reason: 'x'.repeat(n - head) })
})
const line = fc.oneof(
  { arbitrary: message.map((m) => encodeControlMessage(m).toString('utf8').slice(0, -1)), weight: 6 },
  { arbitrary: nearMessage, weight: 4 },
  fc.constantFrom('', ' ', '\r', '{}', 'null', '[]', '{"t":"abort","id":1}\r', ' {"t":"abort","id":1} ', '{"t":"abort","id":1}{"t":"abort","id":2}', '{"t":"abort","id":"1"}', '{"t":"abort","id":1e0}', '{"t":"abort","id":1.0}', '{"__proto__":{"t":"abort"},"id":1}', '\ufeff{"t":"abort","id":1}'),
  anyString,
  longLine,
)
/** Lines with their LF (sometimes dropped, so lines run together), or raw bytes. */
const stream = fc.oneof(
  { arbitrary: fc.array(fc.tuple(line, fc.oneof({ arbitrary: fc.constant('\n'), weight: 9 }, fc.constant(''))), { maxLength: 6 }).map((ls) => Buffer.from(ls.map(([l, lf]) => l + lf).join(''), 'utf8')), weight: 6 },
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.tuple(fc.nat(9_000), fc.constantFrom(0x61, 0x0a, 0x20)).map(([n, b]) => Buffer.alloc(n, b)),
)

// ---- properties -------------------------------------------------------------------------------

test('any byte stream in any chunks: the one-shot messages, or BAD_REQUEST (too long / not JSON / invalid)', () => {
  fc.assert(
    fc.property(stream.chain((bytes) => cutsOf(bytes.length).map((cuts) => ({ bytes, cuts }))), ({ bytes, cuts }) => {
      const expected = reference(bytes)
      const got = feed(bytes, cuts)
      assert.equal(got.refused, expected.refused, 'refused exactly when a one-shot reading refuses')
      if (expected.refused) {
        // Messages of the chunk that failed are dropped with it: what came out is a prefix.
        assert.deepEqual(got.messages, expected.messages.slice(0, got.messages.length))
      } else {
        assert.deepEqual(got.messages, expected.messages)
        assert.ok(got.pending <= MAX_CONTROL_LINE_BYTES, `holds ${got.pending} bytes of an unfinished line`)
      }
    }),
    { numRuns: RUNS, seed },
  )
})

test('valid messages split at every possible boundary, and one byte at a time, decode to the same messages', () => {
  const short = message.filter((m) => m.t === 'abort' || m.reason.length + m.code.length < 50)
  fc.assert(
    fc.property(fc.array(short, { minLength: 1, maxLength: 3 }), (messages) => {
      const all = Buffer.concat(messages.map(encodeControlMessage))
      assert.equal(all.indexOf(0x0a), encodeControlMessage(messages[0]!).length - 1, 'one LF per message, at its end')
      for (let cut = 0; cut <= all.length; cut++) {
        assert.deepEqual(feed(all, [cut, all.length]), { messages, refused: false, pending: 0 }, `cut at ${cut}`)
      }
      assert.deepEqual(feed(all, Array.from({ length: all.length }, (_, i) => i + 1)), { messages, refused: false, pending: 0 }, 'one byte at a time')
    }),
    { numRuns: 2000, seed },
  )
})

test('encode → decode round-trips every message whose line fits the limit; a longer line is refused as too long', () => {
  const anyMessage = fc.oneof(message, fc.tuple(anyString, fc.integer({ min: 3_900, max: 4_200 })).map(([code, n]): ControlMessage => ({ t: 'revoke', code, reason: 'é'.repeat(n >> 1) })))
  fc.assert(
    fc.property(fc.array(anyMessage, { minLength: 1, maxLength: 3 }), fc.nat(), (messages, cutSeed) => {
      const lines = messages.map(encodeControlMessage)
      const all = Buffer.concat(lines)
      const fits = lines.findIndex((l) => l.length - 1 > MAX_CONTROL_LINE_BYTES)
      const got = feed(all, [cutSeed % (all.length + 1), all.length])
      if (fits < 0) assert.deepEqual(got, { messages, refused: false, pending: 0 })
      else {
        assert.equal(got.refused, true, 'an over-long line is refused')
        assert.deepEqual(got.messages, messages.slice(0, got.messages.length))
      }
    }),
    { numRuns: 2000, seed },
  )
})
