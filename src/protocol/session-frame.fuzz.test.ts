import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  FLAG_ACK,
  FLAG_END,
  MAX_CONTROL_PAYLOAD_BYTES,
  SessionFrameDecoder,
  SessionFrameType,
  encodeFrame,
  type SessionFrameTypeCode,
} from './session-frame.ts'
import { assertTunnelError, cutsOf, fuzzSeed } from '../testing/fuzz.ts'

// Property-based fuzzing of the agent session frame decoder, which reads whatever the other end of
// a session sends: valid frames cut into any chunks decode to exactly those frames (a model check),
// and any bytes give events or a TUN_ERR_SESSION_PROTOCOL refusal, the same whole or chunked; no
// other exception. FUZZ_SEED=<n> explores another sequence; fast-check prints the seed of a failure.

const seed = fuzzSeed(0x5e55)
const RUNS = 3000
/** a small DATA limit, so that generated lengths cross it */
const DATA_LIMIT = 2048

interface Frame {
  type: SessionFrameTypeCode
  flags: number
  stream: number
  payload: Buffer
}

type Event = { kind: 'data'; stream: number; bytes: string; end: boolean } | { kind: 'frame'; type: number; flags: number; stream: number; payload: string }

const bytes = (max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b))
const streamId = fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom(1, 0x7fffffff, 0xffffffff))
const exact = (n: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b))

/** Frames the rules accept, of every type. */
const validFrame: fc.Arbitrary<Frame> = fc.oneof(
  { arbitrary: fc.record({ type: fc.constant(SessionFrameType.DATA), flags: fc.constantFrom(0, FLAG_END), stream: streamId, payload: bytes(DATA_LIMIT) }), weight: 6 },
  fc.record({ type: fc.constant(SessionFrameType.OPEN), flags: fc.constant(0), stream: streamId, payload: bytes(60) }),
  fc.record({ type: fc.constant(SessionFrameType.ACCEPT), flags: fc.constant(0), stream: streamId, payload: exact(0) }),
  fc.record({ type: fc.constant(SessionFrameType.REFUSE), flags: fc.constant(0), stream: streamId, payload: bytes(100) }),
  fc.record({ type: fc.constant(SessionFrameType.ABORT), flags: fc.constant(0), stream: streamId, payload: exact(0) }),
  fc.record({ type: fc.constant(SessionFrameType.CREDIT), flags: fc.constant(0), stream: streamId, payload: exact(4) }),
  fc.record({ type: fc.constant(SessionFrameType.SETTINGS), flags: fc.constant(0), stream: fc.constant(0), payload: fc.integer({ min: 12, max: 40 }).chain(exact) }),
  fc.record({ type: fc.constant(SessionFrameType.PING), flags: fc.constantFrom(0, FLAG_ACK), stream: fc.constant(0), payload: exact(8) }),
  fc.record({ type: fc.constant(SessionFrameType.GOAWAY), flags: fc.constant(0), stream: fc.constant(0), payload: exact(0) }),
  fc.record({ type: fc.constant(SessionFrameType.CONTROL), flags: fc.constant(0), stream: fc.constant(0), payload: fc.oneof(bytes(200), exact(MAX_CONTROL_PAYLOAD_BYTES)) }),
)

function encode(f: Frame): Buffer {
  return encodeFrame(f.type, f.flags, f.stream, f.payload)
}

/** What the decoder must report for valid frames: DATA whole per frame after merging its pieces. */
function model(frames: Frame[]): Event[] {
  return frames.map((f): Event =>
    f.type === SessionFrameType.DATA
      ? { kind: 'data', stream: f.stream, bytes: f.payload.toString('hex'), end: (f.flags & FLAG_END) !== 0 }
      : { kind: 'frame', type: f.type, flags: f.flags, stream: f.stream, payload: f.payload.toString('hex') },
  )
}

/**
 * Feeds bytes cut at `cuts`; DATA pieces of one frame are merged (the decoder may cut them anywhere).
 * `transient`: each cut is pushed from one reused buffer, scribbled over once the push returned, as
 * an agent's connection reads into one buffer.
 */
function feed(all: Buffer, cuts: number[], transient = false): { events: Event[]; refused: boolean } {
  const reused = transient ? Buffer.alloc(all.length) : undefined
  const events: Event[] = []
  /** a DATA frame whose pieces are still coming */
  let open: Extract<Event, { kind: 'data' }> | undefined
  const d = new SessionFrameDecoder(
    {
      onData(stream, chunk, end) {
        if (open !== undefined && open.stream === stream) open.bytes += chunk.toString('hex')
        else {
          open = { kind: 'data', stream, bytes: chunk.toString('hex'), end: false }
          events.push(open)
        }
        if (end) open.end = true
        // A frame's last piece: whether or not it carried END, the next piece starts a new frame.
        if (d.atFrameBoundary) open = undefined
      },
      onFrame(type, flags, stream, payload) {
        open = undefined
        events.push({ kind: 'frame', type, flags, stream, payload: payload.toString('hex') })
      },
    },
    { maxDataPayloadBytes: DATA_LIMIT },
  )
  let at = 0
  for (const cut of cuts) {
    try {
      if (reused === undefined) d.push(all.subarray(at, cut))
      else {
        const n = all.copy(reused, 0, at, cut)
        d.push(reused.subarray(0, n), true)
        reused.fill(0xa5)
      }
    } catch (err) {
      assertTunnelError(err, ['TUN_ERR_SESSION_PROTOCOL'])
      return { events, refused: true }
    }
    at = cut
  }
  return { events, refused: false }
}

test('valid frames, cut into any chunks, decode to exactly those frames, also from a reused read buffer (model check)', () => {
  fc.assert(
    fc.property(
      fc.array(validFrame, { maxLength: 12 }).chain((frames) => {
        const all = Buffer.concat(frames.map(encode))
        return cutsOf(all.length).map((cuts) => ({ frames, all, cuts }))
      }),
      ({ frames, all, cuts }) => {
        const got = feed(all, cuts)
        assert.equal(got.refused, false)
        assert.deepEqual(got.events, model(frames))
        assert.deepEqual(feed(all, cuts, true), got, 'the same from a reused read buffer')
      },
    ),
    { numRuns: RUNS, seed },
  )
})

/** Valid frames with a few bytes changed, inserted or dropped; or just random bytes. */
const anyBytes = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.array(validFrame, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'drop')), { maxLength: 3 }))
      .map(([frames, edits]) => {
        const b = [...Buffer.concat(frames.map(encode))]
        for (const [where, value, how] of edits) {
          const i = b.length === 0 ? 0 : where % b.length
          if (how === 'set') b[i] = value
          else if (how === 'insert') b.splice(i, 0, value)
          else b.splice(i, 1)
        }
        return Buffer.from(b)
      }),
    weight: 4,
  },
  bytes(300),
)

test('any bytes: the same events or the same refusal whether pushed whole or in any chunks', () => {
  fc.assert(
    fc.property(
      anyBytes.chain((all) => cutsOf(all.length).map((cuts) => ({ all, cuts }))),
      ({ all, cuts }) => {
        const whole = feed(all, [all.length])
        const chunked = feed(all, cuts)
        assert.equal(chunked.refused, whole.refused, 'refused in the same cases')
        assert.deepEqual(chunked.events, whole.events)
      },
    ),
    { numRuns: RUNS, seed },
  )
})
