import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import type { ErrorCode } from '../../errors/index.ts'
import { FrameDecoder, encodeFrame, type Frame } from '../wire/frame-decoder.ts'
import {
  FRAME_ACK,
  FRAME_EVENT,
  FRAME_PING,
  FRAME_PONG,
  busFrameFormat,
  decodeBusMessage,
  encodeAckPayload,
  encodeEventPayload,
  type BusEvent,
  type BusMessage,
} from './bus-messages.ts'
import { outcome, fuzzSeed } from '../../testing/fuzz.ts'
import { createSecretKey } from 'node:crypto'
import { FrameOpener, FrameSealer, sealedFormat } from '../wire/frame-seal.ts'

// Property-based fuzzing of the messages an authenticated cluster peer sends on the bus: any frame
// gives a well-formed BusMessage or TUN_ERR_CLUSTER_BUS_PROTOCOL; any byte stream through the bus
// framing gives messages, FRAME_TOO_LARGE or BUS_PROTOCOL; never another exception.
// FUZZ_SEED=<n> explores another sequence; fast-check prints the seed of a failure.

const seed = fuzzSeed(0xb055e)
const RUNS = 2500
const BUS_CODES: readonly ErrorCode[] = ['TUN_ERR_CLUSTER_BUS_PROTOCOL']
/** outcome() with this file's refusal code as the default */
const refusedOr = <T>(work: () => T, codes: readonly ErrorCode[] = BUS_CODES) => outcome(work, codes)
const TOPIC = /^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*$/


const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0

/** The documented reading of one frame (bus-messages.ts header), or undefined when it must be refused. */
function reference(frame: Frame): BusMessage | undefined {
  if (frame.type === FRAME_PING || frame.type === FRAME_PONG) {
    return frame.payload.length === 0 ? { type: frame.type === FRAME_PING ? 'ping' : 'pong' } : undefined
  }
  if (frame.type !== FRAME_ACK && frame.type !== FRAME_EVENT) return undefined
  let m: unknown
  try {
    m = JSON.parse(frame.payload.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return undefined
  const o = m as Record<string, unknown>
  if (!isSeq(o['s'])) return undefined
  if (frame.type === FRAME_ACK) return { type: 'ack', seq: o['s'] }
  const i = o['i']
  const t = o['t']
  if (typeof i !== 'string' || i.length < 1 || i.length > 100 || typeof t !== 'string' || t.length > 100 || !TOPIC.test(t)) return undefined
  return { type: 'event', event: { incarnation: i, seq: o['s'], topic: t, data: o['d'] } }
}

// ---- generators -------------------------------------------------------------------------------

const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 }), fc.string({ maxLength: 40 }))
const topic = fc.stringMatching(/^[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){0,3}$/)
const seq = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(1, Number.MAX_SAFE_INTEGER), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }))
// At most 100 UTF-16 units: 50 code points of up to two units each.
const incarnation = fc.oneof(fc.uuid(), fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }))
const data = fc.jsonValue({ maxDepth: 3 })
const event: fc.Arbitrary<BusEvent> = fc.record({ incarnation, seq, topic, data }, { noNullPrototype: true })

const wrong = fc.oneof(
  fc.constantFrom(undefined, null, 0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, '1', '', true, [], {}, [1], { s: 1 }, 'a'.repeat(101), 'Bad.Topic', 'a..b', '.a', 'a.', '1a', 'a-b', 'a b'),
  anyString,
  fc.double(),
  fc.jsonValue({ maxDepth: 2 }),
)
/** JSON objects whose fields are right most of the time, and anything at all otherwise. */
const messageObject = fc
  .record(
    {
      i: fc.oneof({ arbitrary: incarnation, weight: 4 }, wrong),
      s: fc.oneof({ arbitrary: seq, weight: 4 }, wrong),
      t: fc.oneof({ arbitrary: topic, weight: 4 }, wrong),
      d: fc.oneof(data, fc.constant(undefined)),
      extra: fc.dictionary(fc.constantFrom('x', '__proto__', 'constructor', 'toString', 'S', 'type'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3, noNullPrototype: true }),
    },
    { noNullPrototype: true },
  )
  .map(({ extra, ...fields }) => {
    const o: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(extra)) Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true })
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) o[k] = v
    return o
  })
const jsonText = fc.oneof(
  { arbitrary: messageObject.map((o) => JSON.stringify(o)), weight: 6 },
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('', ' ', '{', '{}', 'null', '[]', '"x"', '{"s":1', '{"s":1}x', '{"s":1,"s":"x"}', '{"__proto__":{"s":1}}', '\ufeff{"s":1}', '{"s":1e0}', '{"s":1.0}', '{"s":-0}', '{"s":9007199254740993}', '[[[[[[[[[[]]]]]]]]]]'),
  anyString,
)
const payload = fc.oneof({ arbitrary: jsonText.map((s) => Buffer.from(s, 'utf8')), weight: 6 }, fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)), fc.constant(Buffer.alloc(0)))
const frame: fc.Arbitrary<Frame> = fc.oneof(
  { arbitrary: fc.record({ type: fc.constantFrom(FRAME_EVENT, FRAME_ACK), payload }, { noNullPrototype: true }), weight: 6 },
  { arbitrary: fc.record({ type: fc.constantFrom(FRAME_PING, FRAME_PONG), payload: fc.oneof({ arbitrary: fc.constant(Buffer.alloc(0)), weight: 3 }, payload) }, { noNullPrototype: true }), weight: 2 },
  fc.record({ type: fc.integer({ min: 0, max: 255 }), payload }, { noNullPrototype: true }),
)

// ---- properties -------------------------------------------------------------------------------

test('any frame: the documented BusMessage, or BUS_PROTOCOL; never another exception', () => {
  fc.assert(
    fc.property(frame, (f) => {
      const out = refusedOr(() => decodeBusMessage(f))
      const expected = reference(f)
      if (expected === undefined) assert.ok('error' in out, `accepted type ${f.type} ${JSON.stringify(f.payload.toString('utf8'))}`)
      else assert.deepEqual(out, { value: expected })
    }),
    { numRuns: RUNS, seed },
  )
})

test('a deep JSON payload inside the frame limit is read or refused, never a stack overflow', () => {
  fc.assert(
    fc.property(fc.oneof({ arbitrary: fc.integer({ min: 1, max: 2_000 }), weight: 19 }, fc.integer({ min: 2_000, max: 60_000 })), fc.constantFrom('[', '{"d":'), fc.constantFrom(FRAME_EVENT, FRAME_ACK), (depth, open, type) => {
      const close = open === '[' ? ']' : '}'
      const text = `{"i":"x","s":1,"t":"a","d":${open.repeat(depth)}${open === '[' ? '' : 'null'}${close.repeat(depth)}}`
      const out = refusedOr(() => decodeBusMessage({ type, payload: Buffer.from(text) }))
      assert.ok('value' in out)
    }),
    { numRuns: 2000, seed },
  )
})

test('event / ack payloads → sealed bus framing in any chunks → opened → decodeBusMessage gives back each message', () => {
  const format = busFrameFormat(1024 * 1024)
  const key = createSecretKey(Buffer.alloc(32, 0x42))
  const message = fc.oneof(
    event.map((e): BusMessage => ({ type: 'event', event: e })),
    seq.map((s): BusMessage => ({ type: 'ack', seq: s })),
    fc.constantFrom<BusMessage>({ type: 'ping' }, { type: 'pong' }),
  )
  const input = fc.array(message, { minLength: 1, maxLength: 5 }).chain((messages) => {
    const sealer = new FrameSealer(format, key)
    const bytes = Buffer.concat(
      messages.map((m) =>
        m.type === 'event'
          ? sealer.seal(FRAME_EVENT, encodeEventPayload(format, m.event))
          : m.type === 'ack'
            ? sealer.seal(FRAME_ACK, encodeAckPayload(m.seq))
            : sealer.seal(m.type === 'ping' ? FRAME_PING : FRAME_PONG),
      ),
    )
    return fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 8 }).map((cuts) => ({ messages, bytes, cuts: [...cuts, bytes.length].sort((a, b) => a - b) }))
  })
  fc.assert(
    fc.property(input, ({ messages, bytes, cuts }) => {
      const d = new FrameDecoder(sealedFormat(format))
      const opener = new FrameOpener(key)
      const got: BusMessage[] = []
      let at = 0
      for (const cut of cuts) {
        d.push(bytes.subarray(at, cut))
        at = cut
        for (let f = d.next(); f !== undefined; f = d.next()) got.push(decodeBusMessage(opener.open(f)))
      }
      // JSON carries data as JSON: -0 arrives as 0, and so on.
      const expected = messages.map((m) => (m.type === 'event' ? { type: 'event', event: { ...m.event, data: JSON.parse(JSON.stringify(m.event.data) ?? 'null') } } : m))
      assert.deepEqual(got, expected)
    }),
    { numRuns: RUNS, seed },
  )
})

test('a bus byte stream in arbitrary chunks gives messages, FRAME_TOO_LARGE or BUS_PROTOCOL, nothing else', () => {
  const segment = fc.oneof(
    { arbitrary: frame.map((f) => encodeFrame(busFrameFormat(0xffffffff), f.type, f.payload)), weight: 6 },
    fc.uint8Array({ minLength: 1, maxLength: 12 }).map((b) => Buffer.from(b)),
  )
  const input = fc.tuple(fc.constantFrom(64, 256, 4096, 1024 * 1024), fc.array(segment, { minLength: 1, maxLength: 5 })).chain(([max, parts]) => {
    const all = Buffer.concat(parts)
    return fc.array(fc.integer({ min: 0, max: all.length }), { maxLength: 8 }).map((cuts) => ({ max, all, cuts: [...cuts, all.length].sort((a, b) => a - b) }))
  })
  fc.assert(
    fc.property(input, ({ max, all, cuts }) => {
      const d = new FrameDecoder(busFrameFormat(max))
      let at = 0
      let delivered = 0
      const out = refusedOr(() => {
        for (const cut of cuts) {
          d.push(all.subarray(at, cut))
          at = cut
          for (let f = d.next(); f !== undefined; f = d.next()) {
            const m = decodeBusMessage(f)
            assert.ok(['event', 'ack', 'ping', 'pong'].includes(m.type))
            delivered++
          }
        }
      }, ['TUN_ERR_CLUSTER_FRAME_TOO_LARGE', 'TUN_ERR_CLUSTER_BUS_PROTOCOL'])
      if ('value' in out) assert.ok(d.bufferedBytes < 5 + max, `buffered ${d.bufferedBytes} (${delivered} delivered)`)
    }),
    { numRuns: RUNS, seed },
  )
})
