import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TunnelError } from '../../errors/index.ts'
import { FrameDecoder, encodeFrame, type Frame, type FrameFormat } from './frame-decoder.ts'

const AUTH: FrameFormat = { lengthBytes: 2, maxPayloadBytes: 512 }
const BUS: FrameFormat = { lengthBytes: 4, maxPayloadBytes: 4096 }

function drain(d: FrameDecoder): Frame[] {
  const out: Frame[] = []
  for (let f = d.next(); f !== undefined; f = d.next()) out.push(f)
  return out
}

function tooLarge(err: unknown): boolean {
  assert.ok(err instanceof TunnelError)
  assert.equal(err.code, 'TUN_ERR_CLUSTER_FRAME_TOO_LARGE')
  return true
}

test('a frame is type, big-endian length and payload, in both formats', () => {
  assert.deepEqual([...encodeFrame(AUTH, 7, Buffer.from('hi'))], [7, 0, 2, 0x68, 0x69])
  assert.deepEqual([...encodeFrame(BUS, 0x10, Buffer.from('x'))], [0x10, 0, 0, 0, 1, 0x78])
  assert.deepEqual([...encodeFrame(AUTH, 1)], [1, 0, 0])
})

test('round trip at every split point, and one byte at a time', () => {
  for (const format of [AUTH, BUS]) {
    const frames = [encodeFrame(format, 1, Buffer.alloc(0)), encodeFrame(format, 2, Buffer.alloc(300, 9)), encodeFrame(format, 3, Buffer.from('end'))]
    const all = Buffer.concat(frames)
    for (let cut = 0; cut <= all.length; cut++) {
      const d = new FrameDecoder(format)
      d.push(all.subarray(0, cut))
      const got = drain(d)
      d.push(all.subarray(cut))
      got.push(...drain(d))
      assert.deepEqual(got.map((f) => [f.type, f.payload.length]), [[1, 0], [2, 300], [3, 3]], `cut ${cut}`)
      assert.equal(d.bufferedBytes, 0)
    }
    const d = new FrameDecoder(format)
    const got: Frame[] = []
    for (const byte of all) {
      d.push(Buffer.of(byte))
      got.push(...drain(d))
    }
    assert.equal(got.length, 3)
    assert.equal(got[2]!.payload.toString(), 'end')
  }
})

test('the maximum payload is accepted; one byte more is refused on its header, before any payload', () => {
  const ok = new FrameDecoder(AUTH)
  ok.push(encodeFrame(AUTH, 2, Buffer.alloc(512)))
  assert.equal(ok.next()!.payload.length, 512)

  const d = new FrameDecoder(AUTH)
  d.push(Buffer.of(2, 0x02)) // header incomplete: nothing to judge yet
  assert.equal(d.next(), undefined)
  d.push(Buffer.of(0x01)) // length 513, not one payload byte sent
  assert.throws(() => d.next(), tooLarge)
  assert.throws(() => encodeFrame(AUTH, 2, Buffer.alloc(513)), tooLarge)

  const lying = new FrameDecoder(BUS)
  lying.push(Buffer.of(0x10, 0xff, 0xff, 0xff, 0xff))
  assert.throws(() => lying.next(), tooLarge, 'a 4 GiB length is refused without allocating it')
})

test('takeRemainder hands back undecoded bytes, including those of a frame of another format', () => {
  const d = new FrameDecoder(AUTH)
  const tail = encodeFrame(BUS, 0x10, Buffer.alloc(2000))
  d.push(Buffer.concat([encodeFrame(AUTH, 3, Buffer.alloc(32)), tail]))
  assert.equal(d.next()!.type, 3)
  assert.deepEqual(d.takeRemainder(), tail)
  assert.equal(d.bufferedBytes, 0)
})

test('a maximum that does not fit the length field is a programming error', () => {
  assert.throws(() => new FrameDecoder({ lengthBytes: 2, maxPayloadBytes: 70_000 }), RangeError)
})
