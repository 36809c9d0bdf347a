import assert from 'node:assert/strict'
import { createSecretKey } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { assertTunnelError, cutsOf, fuzzSeed } from '../../testing/fuzz.ts'
import { FrameDecoder, type Frame, type FrameFormat } from './frame-decoder.ts'
import { FRAME_MAC_BYTES, FrameOpener, FrameSealer, sealedFormat } from './frame-seal.ts'

// Property-based fuzzing of sealed bus frames: what one direction seals, the matching opener
// gives back exactly, however the bytes are cut; any change to the stream — one flipped bit, a
// frame dropped, duplicated, swapped, injected, taken from another link or from the opposite
// direction — is refused with TUN_ERR_CLUSTER_BUS_INTEGRITY at the first frame it touches, with
// every frame before it delivered unchanged; never another exception.

const seed = fuzzSeed(0x5ea1)
const RUNS = 1500
const format: FrameFormat = { lengthBytes: 4, maxPayloadBytes: 4096 }

const keyBytes = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => createSecretKey(Buffer.from(b)))
const frame = fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) })
const frames = fc.array(frame, { minLength: 1, maxLength: 6 })

/** Decodes `bytes` cut at `cuts` and opens each frame: the frames opened, then the refusal if any. */
function receive(key: ReturnType<typeof createSecretKey>, bytes: Buffer, cuts: number[]): { opened: Frame[]; error?: unknown } {
  const decoder = new FrameDecoder(sealedFormat(format))
  const opener = new FrameOpener(key)
  const opened: Frame[] = []
  let at = 0
  try {
    for (const cut of cuts) {
      decoder.push(bytes.subarray(at, cut))
      at = cut
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) opened.push(opener.open(f))
    }
    return { opened }
  } catch (error) {
    return { opened, error }
  }
}

const same = (a: Frame, b: Frame): boolean => a.type === b.type && Buffer.from(a.payload).equals(Buffer.from(b.payload))

test('sealed frames in any chunks open to exactly the frames sealed, in order', () => {
  const input = keyBytes.chain((key) => frames.chain((fs) => fc.record({ key: fc.constant(key), fs: fc.constant(fs), cuts: cutsOf(fs.reduce((n, f) => n + 5 + f.payload.length + FRAME_MAC_BYTES, 0)) })))
  fc.assert(
    fc.property(input, ({ key, fs, cuts }) => {
      const sealer = new FrameSealer(format, key)
      const bytes = Buffer.concat(fs.map((f) => sealer.seal(f.type, f.payload)))
      const { opened, error } = receive(key, bytes, cuts)
      assert.equal(error, undefined)
      assert.equal(opened.length, fs.length)
      fs.forEach((f, i) => assert.ok(same(opened[i]!, f), `frame ${i}`))
      assert.equal(sealer.sequence, fs.length)
    }),
    { seed, numRuns: RUNS },
  )
})

type Tamper =
  | { kind: 'flip'; frame: number; bit: number }
  | { kind: 'drop'; frame: number }
  | { kind: 'duplicate'; frame: number }
  | { kind: 'swap'; frame: number }
  | { kind: 'inject'; frame: number; type: number; payload: Buffer; mac: Buffer }
  | { kind: 'other-link'; frame: number }
  | { kind: 'reflect'; frame: number }

const tamper: fc.Arbitrary<Tamper> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), frame: fc.nat(), bit: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), frame: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), frame: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), frame: fc.nat() }),
  fc.record({
    kind: fc.constant('inject' as const),
    frame: fc.nat(),
    type: fc.integer({ min: 0, max: 255 }),
    payload: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    mac: fc.uint8Array({ minLength: 0, maxLength: 40 }).map((b) => Buffer.from(b)),
  }),
  fc.record({ kind: fc.constant('other-link' as const), frame: fc.nat() }),
  fc.record({ kind: fc.constant('reflect' as const), frame: fc.nat() }),
)

test('a tampered stream is refused with BUS_INTEGRITY at the first frame touched; the frames before it are delivered intact', () => {
  const input = fc.record({ mine: keyBytes, theirs: keyBytes, other: keyBytes, fs: frames, t: tamper }).chain((r) => fc.record({ r: fc.constant(r), cutSeed: fc.nat() }))
  fc.assert(
    fc.property(input, ({ r: { mine, theirs, other, fs, t }, cutSeed }) => {
      // `mine` keys this direction, `theirs` the opposite one, `other` the same direction of another link.
      const wire = ((s) => fs.map((f) => s.seal(f.type, f.payload)))(new FrameSealer(format, mine))
      const i = t.frame % fs.length
      let sent = [...wire]
      if (t.kind === 'flip') {
        const f = Buffer.from(sent[i]!)
        // Bits of the type, the payload and the MAC; length bytes are excluded: a changed length
        // is a different framing, which the decoder may rightly wait on for bytes that never come.
        const positions = [0, ...Array.from({ length: f.length - 5 }, (_, k) => k + 5)]
        const bit = t.bit % (positions.length * 8)
        f[positions[bit >> 3]!]! ^= 1 << (bit & 7)
        sent[i] = f
      } else if (t.kind === 'drop') {
        if (i === fs.length - 1) return // dropping the last frame leaves a valid prefix: nothing to refuse
        sent.splice(i, 1)
      } else if (t.kind === 'duplicate') {
        sent.splice(i + 1, 0, sent[i]!)
      } else if (t.kind === 'swap') {
        if (i === fs.length - 1 || same(fs[i]!, fs[i + 1]!)) return
        ;[sent[i], sent[i + 1]] = [sent[i + 1]!, sent[i]!]
      } else if (t.kind === 'inject') {
        const body = Buffer.concat([t.payload, t.mac])
        const head = Buffer.alloc(5)
        head[0] = t.type
        head.writeUInt32BE(body.length, 1)
        sent.splice(i, 0, Buffer.concat([head, body]))
      } else {
        // The same frames sealed for another link, or by the peer for the opposite direction.
        const foreign = new FrameSealer(format, t.kind === 'other-link' ? other : theirs)
        const replayed = fs.map((f) => foreign.seal(f.type, f.payload))
        sent = [...wire.slice(0, i), ...replayed.slice(i)]
        if (t.kind === 'other-link' ? other.equals(mine) : theirs.equals(mine)) return
      }
      const bytes = Buffer.concat(sent)
      const cuts = [...new Set([((cutSeed % (bytes.length + 1)) + bytes.length + 1) % (bytes.length + 1), bytes.length])].sort((a, b) => a - b)
      const { opened, error } = receive(mine, bytes, cuts)
      assertTunnelError(error, ['TUN_ERR_CLUSTER_BUS_INTEGRITY'])
      const firstTouched = t.kind === 'swap' || t.kind === 'drop' || t.kind === 'inject' ? i : t.kind === 'duplicate' ? i + 1 : i
      assert.equal(opened.length, firstTouched, `refused at frame ${firstTouched}`)
      opened.forEach((f, k) => assert.ok(same(f, fs[k]!), `frame ${k} delivered intact`))
    }),
    { seed, numRuns: RUNS },
  )
})

test('an opener that refused one frame refuses every later one, even a genuine one', () => {
  const key = createSecretKey(Buffer.alloc(32, 7))
  const sealer = new FrameSealer(format, key)
  const opener = new FrameOpener(key)
  const first = sealer.seal(0x10, Buffer.from('a'))
  const second = sealer.seal(0x10, Buffer.from('b'))
  const decoder = new FrameDecoder(sealedFormat(format))
  const bad = Buffer.from(first)
  bad[6] = bad[6]! ^ 1
  decoder.push(Buffer.concat([bad, second]))
  assert.throws(() => opener.open(decoder.next()!), (e: unknown) => (assertTunnelError(e, ['TUN_ERR_CLUSTER_BUS_INTEGRITY']), true))
  assert.throws(() => opener.open(decoder.next()!), (e: unknown) => (assertTunnelError(e, ['TUN_ERR_CLUSTER_BUS_INTEGRITY']), true))
  assert.equal(opener.sequence, 0)
})

test('sealing refuses a payload over the unsealed limit; the sealed format admits the MAC on top of it', () => {
  const key = createSecretKey(Buffer.alloc(32, 1))
  const small: FrameFormat = { lengthBytes: 4, maxPayloadBytes: 16 }
  const sealer = new FrameSealer(small, key)
  assert.throws(() => sealer.seal(1, Buffer.alloc(17)), (e: unknown) => (assertTunnelError(e, ['TUN_ERR_CLUSTER_FRAME_TOO_LARGE']), true))
  assert.equal(sealer.sequence, 0, 'a refused frame takes no sequence number')
  const decoder = new FrameDecoder(sealedFormat(small))
  decoder.push(sealer.seal(1, Buffer.alloc(16)))
  const f = decoder.next()!
  assert.equal(new FrameOpener(key).open(f).payload.length, 16)
})
