import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError } from '../errors/index.ts'
import {
  FLAG_ACK,
  FLAG_END,
  FRAME_HEADER_BYTES,
  MAX_CONTROL_PAYLOAD_BYTES,
  MAX_DATA_PAYLOAD_BYTES,
  SessionFrameDecoder,
  SessionFrameType,
  decodeCredit,
  decodeRefusal,
  decodeSettings,
  encodeCredit,
  encodeFrame,
  encodeFrameHeader,
  encodeRefusal,
  encodeSettings,
} from './session-frame.ts'

type Event = { data: [number, string, boolean] } | { frame: [number, number, number, string] }

function decodeAll(chunks: Buffer[], options?: { maxDataPayloadBytes?: number }): Event[] {
  const events: Event[] = []
  const d = new SessionFrameDecoder(
    {
      onData: (stream, chunk, end) => events.push({ data: [stream, chunk.toString('latin1'), end] }),
      onFrame: (type, flags, stream, payload) => events.push({ frame: [type, flags, stream, payload.toString('hex')] }),
    },
    options,
  )
  for (const c of chunks) d.push(c)
  return events
}

function refused(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof TunnelError)
    assert.equal(err.code, 'TUN_ERR_SESSION_PROTOCOL')
    assert.match(err.message, pattern)
    return true
  }
}

test('the header is length u24, type, flags, stream u32, big-endian', () => {
  assert.equal(encodeFrameHeader(SessionFrameType.DATA, FLAG_END, 0x01020304, 0x0a0b0c).toString('hex'), '0a0b0c' + '00' + '01' + '01020304')
  assert.equal(FRAME_HEADER_BYTES, 9)
})

test('frames of every kind decode back, several in one chunk', () => {
  const chunk = Buffer.concat([
    encodeSettings({ streamWindowBytes: 1 << 20, maxStreams: 100, maxDataPayloadBytes: 16384 }),
    encodeFrame(SessionFrameType.OPEN, 0, 1, Buffer.from('203.0.113.9')),
    encodeFrame(SessionFrameType.DATA, 0, 1, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
    encodeFrame(SessionFrameType.DATA, FLAG_END, 1),
    encodeCredit(1, 4096),
    encodeFrame(SessionFrameType.PING, FLAG_ACK, 0, Buffer.alloc(8, 7)),
    encodeFrame(SessionFrameType.GOAWAY, 0, 0),
    encodeFrame(SessionFrameType.ABORT, 0, 3),
  ])
  assert.deepEqual(decodeAll([chunk]), [
    { frame: [SessionFrameType.SETTINGS, 0, 0, '00100000' + '00000064' + '00004000'] },
    { frame: [SessionFrameType.OPEN, 0, 1, Buffer.from('203.0.113.9').toString('hex')] },
    { data: [1, 'GET / HTTP/1.1\r\n\r\n', false] },
    { data: [1, '', true] },
    { frame: [SessionFrameType.CREDIT, 0, 1, '00001000'] },
    { frame: [SessionFrameType.PING, FLAG_ACK, 0, '0707070707070707'] },
    { frame: [SessionFrameType.GOAWAY, 0, 0, ''] },
    { frame: [SessionFrameType.ABORT, 0, 3, ''] },
  ])
})

test('DATA is handed on piece by piece as it arrives, END on the last piece only', () => {
  const frame = encodeFrame(SessionFrameType.DATA, FLAG_END, 9, Buffer.from('abcdefgh'))
  const events = decodeAll([frame.subarray(0, 4), frame.subarray(4, 12), frame.subarray(12, 15), frame.subarray(15)])
  assert.deepEqual(events, [{ data: [9, 'abc', false] }, { data: [9, 'def', false] }, { data: [9, 'gh', true] }])
})

test('a control frame split across chunks is handed on whole, and one byte at a time works', () => {
  const frame = encodeFrame(SessionFrameType.CONTROL, 0, 0, Buffer.from('{"t":"ready"}'))
  const bytes = [...frame].map((b) => Buffer.from([b]))
  assert.deepEqual(decodeAll(bytes), [{ frame: [SessionFrameType.CONTROL, 0, 0, Buffer.from('{"t":"ready"}').toString('hex')] }])
})

test('a length over its limit is refused from the header alone, before any payload byte', () => {
  assert.throws(() => decodeAll([encodeFrameHeader(SessionFrameType.DATA, 0, 1, MAX_DATA_PAYLOAD_BYTES + 1)]), refused(/DATA frame of 65537 bytes is over the 65536-byte limit/))
  assert.throws(() => decodeAll([encodeFrameHeader(SessionFrameType.DATA, 0, 1, 20_000)], { maxDataPayloadBytes: 16384 }), refused(/over the 16384-byte limit/))
  assert.throws(() => decodeAll([encodeFrameHeader(SessionFrameType.CONTROL, 0, 0, MAX_CONTROL_PAYLOAD_BYTES + 1)]), refused(/CONTROL frame of 4097 bytes/))
  assert.throws(() => decodeAll([encodeFrameHeader(SessionFrameType.REFUSE, 0, 1, 0xffffff)]), refused(/REFUSE frame of 16777215 bytes/))
})

test('unknown types and flags, and frames on the wrong stream, are refused naming the problem', () => {
  assert.throws(() => decodeAll([Buffer.from('00000010000000000000', 'hex')]), refused(/^unknown frame type 16$/))
  assert.throws(() => decodeAll([encodeFrameHeader(SessionFrameType.DATA, 0x2, 1, 0)]), refused(/DATA frame with unknown flags 0x2/))
  assert.throws(() => decodeAll([encodeFrameHeader(SessionFrameType.OPEN, FLAG_END, 1, 0)]), refused(/OPEN frame with unknown flags/))
  assert.throws(() => decodeAll([encodeFrame(SessionFrameType.DATA, 0, 0, Buffer.from('x'))]), refused(/^DATA frame on stream 0$/))
  assert.throws(() => decodeAll([encodeFrame(SessionFrameType.PING, 0, 5, Buffer.alloc(8))]), refused(/PING frame must be on stream 0, got stream 5/))
  assert.throws(() => decodeAll([encodeFrame(SessionFrameType.PING, 0, 0, Buffer.alloc(4))]), refused(/PING frame needs 8 payload bytes, got 4/))
  assert.throws(() => decodeAll([encodeFrame(SessionFrameType.CREDIT, 0, 1, Buffer.alloc(5))]), refused(/CREDIT frame needs 4 payload bytes/))
  assert.throws(() => decodeAll([encodeFrame(SessionFrameType.SETTINGS, 0, 0, Buffer.alloc(8))]), refused(/SETTINGS frame needs at least 12 payload bytes/))
  assert.throws(() => decodeAll([encodeFrame(SessionFrameType.ACCEPT, 0, 1, Buffer.alloc(1))]), refused(/ACCEPT frame needs 0 payload bytes/))
})

test('after a refusal, or once stopped, nothing more is handed on', () => {
  const events: string[] = []
  const d = new SessionFrameDecoder({
    onData: () => {
      events.push('data')
      d.stop()
    },
    onFrame: () => events.push('frame'),
  })
  d.push(Buffer.concat([encodeFrame(SessionFrameType.DATA, 0, 1, Buffer.from('a')), encodeFrame(SessionFrameType.GOAWAY, 0, 0)]))
  assert.deepEqual(events, ['data'])
  d.push(encodeFrame(SessionFrameType.GOAWAY, 0, 0))
  assert.deepEqual(events, ['data'])

  const e2: string[] = []
  const d2 = new SessionFrameDecoder({ onData: () => e2.push('data'), onFrame: () => e2.push('frame') })
  assert.throws(() => d2.push(Buffer.from('000000ff000000000000', 'hex')))
  d2.push(encodeFrame(SessionFrameType.GOAWAY, 0, 0))
  assert.deepEqual(e2, [])
})

test('settings, credit and refusal payloads: round trip and checks', () => {
  const s = { streamWindowBytes: 262144, maxStreams: 7, maxDataPayloadBytes: 65536 }
  assert.deepEqual(decodeSettings(encodeSettings(s).subarray(FRAME_HEADER_BYTES)), s)
  const longer = Buffer.concat([encodeSettings(s).subarray(FRAME_HEADER_BYTES), Buffer.from('future')])
  assert.deepEqual(decodeSettings(longer), s, 'fields a later version adds are ignored')
  assert.throws(() => decodeSettings(encodeSettings({ ...s, streamWindowBytes: 100 }).subarray(FRAME_HEADER_BYTES)), refused(/stream window of 100 bytes/))
  assert.throws(() => decodeSettings(encodeSettings({ ...s, maxStreams: 0 }).subarray(FRAME_HEADER_BYTES)), refused(/allows no streams/))
  assert.throws(() => decodeSettings(encodeSettings({ ...s, maxDataPayloadBytes: 70000 }).subarray(FRAME_HEADER_BYTES)), refused(/DATA payload limit 70000/))

  assert.equal(decodeCredit(encodeCredit(3, 123456).subarray(FRAME_HEADER_BYTES)), 123456)
  assert.throws(() => decodeCredit(Buffer.alloc(4)), refused(/CREDIT of 0 bytes/))

  const r = { code: 'TUN_ERR_UPSTREAM_REFUSED', message: 'upstream 127.0.0.1:1: ECONNREFUSED' }
  const refusal = encodeRefusal(5, r)
  assert.deepEqual(decodeRefusal(refusal.subarray(FRAME_HEADER_BYTES)), r)
  const huge = encodeRefusal(5, { code: 'X', message: 'é'.repeat(5000) })
  assert.ok(huge.length - FRAME_HEADER_BYTES <= MAX_CONTROL_PAYLOAD_BYTES)
  assert.throws(() => decodeRefusal(Buffer.from('{')), refused(/not JSON/))
  assert.throws(() => decodeRefusal(Buffer.from('{"code":1,"message":"m"}')), refused(/string code and message/))
})
