import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FLAG_END, MAX_DATA_PAYLOAD_BYTES, SessionFrameDecoder, SessionFrameType, encodeCredit, encodeFrame } from '../../protocol/index.ts'
import { FrameBatch, SLAB_BYTES, type TakenBatch } from './frame-batch.ts'
import { positionPattern } from '../../testing/byte-pattern.ts'

/** The frames in a taken batch, decoded as the peer would; each part holds whole frames. */
function decode(batch: TakenBatch): Array<{ type: number; id: number; bytes: Buffer; end: boolean }> {
  const frames: Array<{ type: number; id: number; bytes: Buffer; end: boolean }> = []
  for (const part of batch.parts) {
    const decoder = new SessionFrameDecoder({
      onData: (id, chunk, end) => void frames.push({ type: SessionFrameType.DATA, id, bytes: Buffer.from(chunk), end }),
      onFrame: (type, _flags, id, payload) => void frames.push({ type, id, bytes: Buffer.from(payload), end: false }),
    })
    decoder.push(part)
  }
  return frames
}

function overlaps(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length
}

test('a bulk batch leaves as one contiguous part: DATA frames and the small frames between them, in order (#18)', () => {
  const batch = new FrameBatch()
  const a = positionPattern(MAX_DATA_PAYLOAD_BYTES, 1)
  const b = positionPattern(5000, 2)
  const reused = Buffer.from(a)
  batch.pushData(1, 0, reused)
  // The caller's buffer is free once pushData returns: the batch holds a copy.
  reused.fill(0)
  batch.push(encodeCredit(3, 4096))
  batch.pushData(3, FLAG_END, b)
  assert.equal(batch.bytes, 9 + a.length + 13 + 9 + b.length)
  const taken = batch.take()
  assert.equal(taken.parts.length, 1)
  assert.equal(taken.bytes, 9 + a.length + 13 + 9 + b.length)
  assert.equal(batch.empty, true)
  const frames = decode(taken)
  assert.deepEqual(
    frames.map((f) => [f.type, f.id, f.end]),
    [
      [SessionFrameType.DATA, 1, false],
      [SessionFrameType.CREDIT, 3, false],
      [SessionFrameType.DATA, 3, true],
    ],
  )
  assert.ok(frames[0]!.bytes.equals(a))
  assert.ok(frames[2]!.bytes.equals(b))
  taken.written(false)
})

test('small frames alone keep buffers of their own; a ping goes ahead of what is queued', () => {
  const batch = new FrameBatch()
  const head = Buffer.from('HTTP/1.1 200 OK\r\n\r\n')
  batch.pushData(5, 0, head)
  batch.push(encodeFrame(SessionFrameType.ACCEPT, 0, 7))
  const ping = encodeFrame(SessionFrameType.PING, 0, 0, Buffer.alloc(8))
  batch.unshift(ping)
  const taken = batch.take()
  assert.equal(taken.parts.length, 3)
  assert.equal(taken.parts[0], ping)
  assert.deepEqual(
    decode(taken).map((f) => [f.type, f.id]),
    [
      [SessionFrameType.PING, 0],
      [SessionFrameType.DATA, 5],
      [SessionFrameType.ACCEPT, 7],
    ],
  )
  taken.written(false)
})

test('a slab is never written into where a pending write holds it, and is reused once that write is done (#18)', () => {
  const batch = new FrameBatch()
  const first = positionPattern(MAX_DATA_PAYLOAD_BYTES, 3)
  batch.pushData(1, 0, first)
  const pending = batch.take()
  const held = Buffer.from(pending.parts[0]!)
  // Much more than a slab while the first write is pending: spread over further slabs.
  const later: TakenBatch[] = []
  for (let i = 0; i < 3 * (SLAB_BYTES / MAX_DATA_PAYLOAD_BYTES); i++) {
    batch.pushData(1, 0, positionPattern(MAX_DATA_PAYLOAD_BYTES, 10 + i))
    if (i % 3 === 2) later.push(batch.take())
  }
  later.push(batch.take())
  assert.ok(pending.parts[0]!.equals(held), 'the pending bytes are untouched')
  for (const t of later) for (const part of t.parts) assert.equal(overlaps(part, pending.parts[0]!), false)
  // Every batch after the first decodes to its frames, in order, none overwritten by another.
  let seed = 10
  for (const t of later) for (const f of decode(t)) assert.ok(f.bytes.equals(positionPattern(MAX_DATA_PAYLOAD_BYTES, seed++)))
  pending.written(false)
  for (const t of later) t.written(false)
  // Everything written, the session idle: the next batch reuses one of those slabs.
  batch.pushData(2, 0, positionPattern(4096, 99))
  const next = batch.take()
  const used = [pending, ...later].flatMap((t) => t.parts.map((p) => p.buffer))
  assert.ok(used.includes(next.parts[0]!.buffer), 'a slab went back to be reused')
  next.written(false)
})

test('a failed write leaves its slab to the collector; clear() drops what is queued', () => {
  const batch = new FrameBatch()
  batch.pushData(1, 0, positionPattern(MAX_DATA_PAYLOAD_BYTES, 4))
  const failed = batch.take()
  failed.written(true)
  batch.pushData(1, 0, positionPattern(MAX_DATA_PAYLOAD_BYTES, 5))
  const t = batch.take()
  t.written(false)
  // More than a slab after it: never over the failed write's bytes, which it may still hold.
  const after: TakenBatch[] = []
  for (let i = 0; i < 2 * (SLAB_BYTES / MAX_DATA_PAYLOAD_BYTES); i++) {
    batch.pushData(1, 0, positionPattern(MAX_DATA_PAYLOAD_BYTES, 20 + i))
    after.push(batch.take())
    after.at(-1)!.written(false)
  }
  for (const x of [t, ...after]) for (const part of x.parts) assert.equal(overlaps(part, failed.parts[0]!), false)
  batch.pushData(1, 0, positionPattern(MAX_DATA_PAYLOAD_BYTES, 6))
  batch.push(encodeCredit(1, 10))
  batch.clear()
  assert.equal(batch.bytes, 0)
  assert.equal(batch.take().parts.length, 0)
})

test('full() says when the next DATA frame would not fit behind the batch in its slab', () => {
  const batch = new FrameBatch()
  assert.equal(batch.full(MAX_DATA_PAYLOAD_BYTES), false, 'no slab yet')
  const frames = Math.floor(SLAB_BYTES / (9 + MAX_DATA_PAYLOAD_BYTES))
  for (let i = 0; i < frames; i++) {
    assert.equal(batch.full(MAX_DATA_PAYLOAD_BYTES), false)
    batch.pushData(1, 0, positionPattern(MAX_DATA_PAYLOAD_BYTES, i))
  }
  assert.equal(batch.full(MAX_DATA_PAYLOAD_BYTES), true)
  const taken = batch.take()
  assert.equal(taken.parts.length, 1)
  assert.equal(batch.full(MAX_DATA_PAYLOAD_BYTES), false, 'an empty batch fits in a fresh slab')
  taken.written(false)
})
