import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { SeededRandom } from '../../testing/seeded-random.ts'
import { expectedEvents, generateRequestStream, generateResponseStream } from '../../testing/http1/generate-message-streams.ts'
import { oneByteChunks, runRequestFramer, runResponseFramer, splitAt } from '../../testing/http1/event-recorder.ts'

// Property: how the bytes are chunked never changes what the framer reports. Each case is
// generated from its own seed so a failure names the one seed to replay.

/** Every two-piece split for the first cases, then 1-byte pieces and random partitions. */
function splits(rng: SeededRandom, bytes: Buffer, exhaustive: boolean): Buffer[][] {
  const out: Buffer[][] = [oneByteChunks(bytes)]
  if (exhaustive) for (let cut = 1; cut < bytes.length; cut++) out.push(splitAt(bytes, [cut]))
  for (let i = 0; i < 8; i++) out.push(splitAt(bytes, rng.cuts(bytes.length, rng.int(1, 12))))
  return out
}

describe('incremental equivalence', () => {
  it('request streams report the same events however they are split', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new SeededRandom(seed)
      const stream = generateRequestStream(rng)
      const whole = runRequestFramer([stream.bytes])
      assert.deepEqual(whole.events, expectedEvents(stream), `seed ${seed}: whole-buffer events`)
      assert.deepEqual(whole.afterUpgrade, stream.afterUpgrade, `seed ${seed}: bytes held after upgrade`)
      for (const parts of splits(rng, stream.bytes, seed <= 25)) {
        const split = runRequestFramer(parts)
        assert.deepEqual(split.events, whole.events, `seed ${seed}: split into ${parts.length} pieces`)
        assert.deepEqual(split.afterUpgrade, whole.afterUpgrade, `seed ${seed}: held bytes, ${parts.length} pieces`)
      }
    }
  })

  it('response streams report the same events however they are split', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new SeededRandom(seed * 7919)
      const stream = generateResponseStream(rng)
      const whole = runResponseFramer([stream.bytes], stream.methods, stream.closeDelimited)
      assert.deepEqual(whole, expectedEvents(stream), `seed ${seed}: whole-buffer events`)
      for (const parts of splits(rng, stream.bytes, seed <= 25)) {
        assert.deepEqual(runResponseFramer(parts, stream.methods, stream.closeDelimited), whole, `seed ${seed}: split into ${parts.length} pieces`)
      }
    }
  })

  it('concatenated body bytes equal the body bytes as sent', () => {
    for (let seed = 1000; seed < 1200; seed++) {
      const rng = new SeededRandom(seed)
      const stream = generateRequestStream(rng, 6)
      const parts = splitAt(stream.bytes, rng.cuts(stream.bytes.length, 20))
      const { events } = runRequestFramer(parts)
      const bodies = events.flatMap((e) => (typeof e === 'object' && e !== null && 'body' in e ? [(e as { body: string }).body] : []))
      assert.deepEqual(bodies, stream.messages.flatMap((m) => (m.body.length > 0 ? [m.body.toString('latin1')] : [])), `seed ${seed}`)
    }
  })
})
