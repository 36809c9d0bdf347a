import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TunnelError } from '../../errors/index.ts'
import { SeededRandom } from '../../protocol/http1/testing/seeded-random.ts'
import { FrameDecoder, encodeFrame, type Frame, type FrameFormat } from './frame-decoder.ts'

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
