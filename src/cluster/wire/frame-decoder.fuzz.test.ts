import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { TunnelError } from '../../errors/index.ts'
import { FrameDecoder, encodeFrame, frameHeaderBytes, type Frame, type FrameFormat } from './frame-decoder.ts'
import { fuzzSeed, cutsOf } from '../../testing/fuzz.ts'
import { SeededRandom } from '../../testing/seeded-random.ts'

// Property-based fuzzing of the cluster frame decoder: any byte stream, cut into any chunks, gives
// exactly the frames a one-shot reading of the stream gives, or TUN_ERR_CLUSTER_FRAME_TOO_LARGE as
// soon as an oversize header is complete; never another exception, never unbounded buffering.
// FUZZ_SEED=<n> explores another sequence; fast-check prints the seed of a failure.

const seed = fuzzSeed(0xf4a3e)
const RUNS = 2500

const format: fc.Arbitrary<FrameFormat> = fc.oneof(
  fc.record({ lengthBytes: fc.constant(2 as const), maxPayloadBytes: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(512, 0xffff)) }),
  fc.record({ lengthBytes: fc.constant(4 as const), maxPayloadBytes: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(2048, 1024 * 1024, 0xffffffff)) }),
)

/** A stream made of valid frames, lying or oversize headers, and raw junk, in any order. */
function stream(f: FrameFormat): fc.Arbitrary<Buffer> {
  const header = frameHeaderBytes(f)
  const lengthLimit = f.lengthBytes === 2 ? 0xffff : 0xffffffff
  const segment = fc.oneof(
    { arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: Math.min(f.maxPayloadBytes, 48) })).map(([t, p]) => encodeFrame(f, t, p)), weight: 4 },
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.oneof(fc.integer({ min: 0, max: lengthLimit }), fc.constantFrom(f.maxPayloadBytes, f.maxPayloadBytes + 1, lengthLimit))).map(([t, len]) => {
      const b = Buffer.alloc(header)
      b[0] = t
      if (f.lengthBytes === 2) b.writeUInt16BE(Math.min(len, 0xffff), 1)
      else b.writeUInt32BE(Math.min(len, 0xffffffff), 1)
      return b
    }),
    fc.uint8Array({ minLength: 1, maxLength: 24 }).map((b) => Buffer.from(b)),
  )
  return fc.oneof({ arbitrary: fc.array(segment, { maxLength: 6 }).map((parts) => Buffer.concat(parts)), weight: 3 }, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)))
}


/** The one-shot reading: frames in order, then either an oversize header (at `errorAt`) or the offset where bytes run out. */
function reference(f: FrameFormat, bytes: Buffer): { frames: Frame[]; consumed: number; errorAt?: number } {
  const header = frameHeaderBytes(f)
  const frames: Frame[] = []
  let at = 0
  while (bytes.length - at >= header) {
    const len = f.lengthBytes === 2 ? bytes.readUInt16BE(at + 1) : bytes.readUInt32BE(at + 1)
    if (len > f.maxPayloadBytes) return { frames, consumed: at, errorAt: at }
    if (bytes.length - at < header + len) break
    frames.push({ type: bytes[at]!, payload: bytes.subarray(at + header, at + header + len) })
    at += header + len
  }
  return { frames, consumed: at }
}

const asPairs = (frames: Frame[]): Array<[number, string]> => frames.map((f) => [f.type, f.payload.toString('hex')])

function assertTooLarge(err: unknown, f: FrameFormat): asserts err is TunnelError {
  assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
  assert.equal(err.code, 'TUN_ERR_CLUSTER_FRAME_TOO_LARGE', err.message)
  assert.match(err.message, new RegExp(`the limit is ${f.maxPayloadBytes} bytes`))
  assert.equal(err.details['maxPayloadBytes'], f.maxPayloadBytes)
  assert.ok((err.details['bytes'] as number) > f.maxPayloadBytes)
}

test('arbitrary byte streams in arbitrary chunks: the one-shot frames, or FRAME_TOO_LARGE as soon as the header is complete', () => {
  const input = format.chain((f) => stream(f).chain((bytes) => cutsOf(bytes.length).map((cuts) => ({ f, bytes, cuts }))))
  fc.assert(
    fc.property(input, ({ f, bytes, cuts }) => {
      const expected = reference(f, bytes)
      const header = frameHeaderBytes(f)
      const d = new FrameDecoder(f)
      const got: Frame[] = []
      let at = 0
      let thrownAt: number | undefined
      for (const cut of cuts) {
        d.push(bytes.subarray(at, cut))
        at = cut
        try {
          for (let fr = d.next(); fr !== undefined; fr = d.next()) got.push(fr)
        } catch (err) {
          assertTooLarge(err, f)
          thrownAt = at
          break
        }
        assert.ok(d.bufferedBytes < header + f.maxPayloadBytes || d.bufferedBytes < header, `buffered ${d.bufferedBytes} after draining`)
      }
      assert.deepEqual(asPairs(got), asPairs(expected.frames))
      if (expected.errorAt === undefined) {
        assert.equal(thrownAt, undefined)
        assert.equal(d.bufferedBytes, bytes.length - expected.consumed)
        assert.ok(d.takeRemainder().equals(bytes.subarray(expected.consumed)), 'takeRemainder hands back every undelivered byte')
        assert.equal(d.bufferedBytes, 0)
      } else {
        // Refused at the first chunk that completed the oversize header, not later.
        assert.ok(thrownAt !== undefined, 'an oversize header is refused')
        const needed = expected.errorAt + header
        assert.equal(thrownAt, cuts.find((c) => c >= needed), 'refused as soon as the header was complete')
        // And it stays refused.
        assert.throws(() => d.next(), (err: unknown) => (assertTooLarge(err, f), true))
      }
    }),
    { numRuns: RUNS, seed },
  )
})

test('valid frames split at every possible boundary, and one byte at a time, decode to the same frames', () => {
  const input = format.chain((f) =>
    fc.record({ f: fc.constant(f), frames: fc.array(fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: Math.min(f.maxPayloadBytes, 24) }) }), { minLength: 1, maxLength: 4 }) }),
  )
  fc.assert(
    fc.property(input, ({ f, frames }) => {
      const expected = frames.map((fr) => [fr.type, Buffer.from(fr.payload).toString('hex')])
      const all = Buffer.concat(frames.map((fr) => encodeFrame(f, fr.type, fr.payload)))
      for (let cut = 0; cut <= all.length; cut++) {
        const d = new FrameDecoder(f)
        const got: Frame[] = []
        for (const chunk of [all.subarray(0, cut), all.subarray(cut)]) {
          d.push(chunk)
          for (let fr = d.next(); fr !== undefined; fr = d.next()) got.push(fr)
        }
        assert.deepEqual(asPairs(got), expected, `cut at ${cut}`)
        assert.equal(d.bufferedBytes, 0)
      }
      const d = new FrameDecoder(f)
      const got: Frame[] = []
      for (let i = 0; i < all.length; i++) {
        d.push(all.subarray(i, i + 1))
        for (let fr = d.next(); fr !== undefined; fr = d.next()) got.push(fr)
      }
      assert.deepEqual(asPairs(got), expected, 'one byte at a time')
    }),
    { numRuns: 2000, seed },
  )
})

test('handover: handshake frames, then the remainder read in the bus format, however the bytes arrive', () => {
  const AUTH: FrameFormat = { lengthBytes: 2, maxPayloadBytes: 512 }
  const BUS: FrameFormat = { lengthBytes: 4, maxPayloadBytes: 1024 * 1024 }
  const frame = fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 40 }) })
  const input = fc
    .record({ auth: fc.array(frame, { minLength: 1, maxLength: 3 }), bus: fc.array(frame, { maxLength: 3 }) })
    .chain((r) => {
      const bytes = Buffer.concat([...r.auth.map((x) => encodeFrame(AUTH, x.type, x.payload)), ...r.bus.map((x) => encodeFrame(BUS, x.type, x.payload))])
      return cutsOf(bytes.length).map((cuts) => ({ ...r, bytes, cuts }))
    })
  fc.assert(
    fc.property(input, ({ auth, bus, bytes, cuts }) => {
      const handshake = new FrameDecoder(AUTH)
      const got: Frame[] = []
      let at = 0
      let i = 0
      // The handshake pulls exactly its frames, then hands every later byte to the bus decoder.
      for (; i < cuts.length && got.length < auth.length; i++) {
        handshake.push(bytes.subarray(at, cuts[i]))
        at = cuts[i]!
        for (let fr = got.length < auth.length ? handshake.next() : undefined; fr !== undefined; fr = got.length < auth.length ? handshake.next() : undefined) got.push(fr)
      }
      assert.deepEqual(asPairs(got), auth.map((x) => [x.type, Buffer.from(x.payload).toString('hex')]))
      const busDecoder = new FrameDecoder(BUS)
      busDecoder.push(handshake.takeRemainder())
      const busGot: Frame[] = []
      for (;;) {
        for (let fr = busDecoder.next(); fr !== undefined; fr = busDecoder.next()) busGot.push(fr)
        if (i >= cuts.length) break
        busDecoder.push(bytes.subarray(at, cuts[i]))
        at = cuts[i++]!
      }
      assert.deepEqual(asPairs(busGot), bus.map((x) => [x.type, Buffer.from(x.payload).toString('hex')]))
      assert.equal(busDecoder.bufferedBytes, 0)
    }),
    { numRuns: RUNS, seed },
  )
})

test('encodeFrame refuses a payload over the limit with FRAME_TOO_LARGE, and accepts every payload up to it', () => {
  fc.assert(
    fc.property(format, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 600 }), (f, type, n) => {
      const payload = Buffer.alloc(n, type)
      try {
        const out = encodeFrame(f, type, payload)
        assert.ok(n <= f.maxPayloadBytes)
        assert.equal(out.length, frameHeaderBytes(f) + n)
        const d = new FrameDecoder(f)
        d.push(out)
        assert.deepEqual(asPairs([d.next()!]), [[type, payload.toString('hex')]])
      } catch (err) {
        assert.ok(err instanceof TunnelError, String(err))
        assert.equal(err.code, 'TUN_ERR_CLUSTER_FRAME_TOO_LARGE')
        assert.ok(n > f.maxPayloadBytes)
        assert.deepEqual(err.details, { bytes: n, maxPayloadBytes: f.maxPayloadBytes })
      }
    }),
    { numRuns: 2000, seed },
  )
})

// ── seeded mutations ─────────────────────────────────────────────────────────────────────────────
// Random and mutated byte streams: the decoder either yields frames or refuses with
// TUN_ERR_CLUSTER_FRAME_TOO_LARGE, never anything else, never buffers past one frame plus a chunk,
// and on valid streams yields exactly the frames encoded, however the stream is cut.

const CASES = 3000
const FORMATS: FrameFormat[] = [
  { lengthBytes: 2, maxPayloadBytes: 512 },
  { lengthBytes: 4, maxPayloadBytes: 2048 },
]

test('valid frame sequences decode identically under random chunking', () => {
  const rng = new SeededRandom(0xc1a5)
  for (let n = 0; n < CASES; n++) {
    const format = rng.pick(FORMATS)
    const frames = Array.from({ length: rng.int(1, 6) }, () => ({ type: rng.int(0, 255), payload: rng.bytes(rng.int(0, rng.chance(0.8) ? 40 : format.maxPayloadBytes)) }))
    const stream = Buffer.concat(frames.map((f) => encodeFrame(format, f.type, f.payload)))
    const d = new FrameDecoder(format)
    const got: Frame[] = []
    let at = 0
    for (const cut of [...rng.cuts(stream.length, rng.int(0, 12)), stream.length]) {
      d.push(stream.subarray(at, cut))
      at = cut
      for (let f = d.next(); f !== undefined; f = d.next()) got.push(f)
    }
    assert.deepEqual(
      got.map((f) => [f.type, f.payload.toString('hex')]),
      frames.map((f) => [f.type, f.payload.toString('hex')]),
      `case ${n}`,
    )
  }
})

test('arbitrary bytes: frames or FRAME_TOO_LARGE, and bounded buffering', () => {
  const rng = new SeededRandom(0xbad5eed)
  for (let n = 0; n < CASES; n++) {
    const format = rng.pick(FORMATS)
    const header = 1 + format.lengthBytes
    const valid = encodeFrame(format, rng.int(0, 255), rng.bytes(rng.int(0, 64)))
    let bytes = rng.chance(0.5) ? rng.bytes(rng.int(0, 600)) : Buffer.from(valid)
    if (bytes === valid || rng.chance(0.7)) {
      // Mutate: flip bits (often in the length), truncate, or append junk.
      bytes = Buffer.from(bytes)
      for (let m = rng.int(1, 3); m > 0 && bytes.length > 0; m--) {
        const at = rng.chance(0.6) ? rng.int(0, Math.min(header, bytes.length) - 1) : rng.int(0, bytes.length - 1)
        bytes[at] = bytes[at]! ^ (1 << rng.int(0, 7))
      }
      if (rng.chance(0.3)) bytes = bytes.subarray(0, rng.int(0, bytes.length))
      if (rng.chance(0.3)) bytes = Buffer.concat([bytes, rng.bytes(rng.int(1, 20))])
    }
    const d = new FrameDecoder(format)
    let at = 0
    try {
      for (const cut of [...rng.cuts(bytes.length, rng.int(0, 8)), bytes.length]) {
        const chunk = bytes.subarray(at, cut)
        at = cut
        d.push(chunk)
        for (let f = d.next(); f !== undefined; f = d.next()) assert.ok(f.payload.length <= format.maxPayloadBytes)
        assert.ok(d.bufferedBytes <= header + format.maxPayloadBytes + chunk.length, `case ${n}: buffered ${d.bufferedBytes}`)
      }
    } catch (err) {
      assert.ok(err instanceof TunnelError, `case ${n}: ${String(err)}`)
      assert.equal(err.code, 'TUN_ERR_CLUSTER_FRAME_TOO_LARGE')
    }
  }
})
