import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError } from '../errors/index.ts'
import { ControlMessageDecoder, MAX_CONTROL_LINE_BYTES, encodeControlMessage, type ControlMessage } from './control-message.ts'

const abort: ControlMessage = { t: 'abort', id: 7 }
const revoke: ControlMessage = { t: 'revoke', code: 'TUN_ERR_KEY_REJECTED', reason: 'key rotated — reconnect ✓' }

function isControlError(err: unknown): boolean {
  assert.ok(err instanceof TunnelError, 'a TunnelError')
  assert.equal(err.code, 'TUN_ERR_HANDSHAKE_BAD_REQUEST')
  return true
}

test('encoding is one JSON line ending in LF', () => {
  const b = encodeControlMessage(abort)
  assert.equal(b.toString('utf8'), '{"t":"abort","id":7}\n')
  assert.equal(b.indexOf(0x0a), b.length - 1)
})

test('round trip of each message type', () => {
  for (const m of [abort, revoke]) {
    assert.deepEqual(new ControlMessageDecoder().push(encodeControlMessage(m)), [m])
  }
})

test('several messages in one chunk', () => {
  const messages: ControlMessage[] = [abort, revoke, { t: 'abort', id: 1 }, { t: 'abort', id: Number.MAX_SAFE_INTEGER }]
  const chunk = Buffer.concat(messages.map(encodeControlMessage))
  assert.deepEqual(new ControlMessageDecoder().push(chunk), messages)
})

test('one message split across chunks byte by byte', () => {
  const bytes = encodeControlMessage(revoke)
  const d = new ControlMessageDecoder()
  const got: ControlMessage[] = []
  for (let i = 0; i < bytes.length; i++) {
    const out = d.push(bytes.subarray(i, i + 1))
    if (i < bytes.length - 1) assert.deepEqual(out, [], `nothing before the LF (byte ${i})`)
    got.push(...out)
  }
  assert.deepEqual(got, [revoke])
})

test('message boundaries anywhere in the stream', () => {
  const messages: ControlMessage[] = [abort, revoke, { t: 'abort', id: 42 }]
  const all = Buffer.concat(messages.map(encodeControlMessage))
  for (let cut = 0; cut <= all.length; cut++) {
    const d = new ControlMessageDecoder()
    const got = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))]
    assert.deepEqual(got, messages, `cut at ${cut}`)
  }
})

test('the decoder keeps working after a complete message', () => {
  const d = new ControlMessageDecoder()
  assert.deepEqual(d.push(encodeControlMessage(abort)), [abort])
  assert.deepEqual(d.push(encodeControlMessage(revoke)), [revoke])
})

test('a line of exactly the maximum length is accepted', () => {
  const skeleton = JSON.stringify({ t: 'revoke', code: 'X', reason: '' })
  const m: ControlMessage = { t: 'revoke', code: 'X', reason: 'r'.repeat(MAX_CONTROL_LINE_BYTES - skeleton.length) }
  const bytes = encodeControlMessage(m)
  assert.equal(bytes.length, MAX_CONTROL_LINE_BYTES + 1)
  assert.deepEqual(new ControlMessageDecoder().push(bytes), [m])
})

test('an over-long line in one chunk is rejected', () => {
  const m: ControlMessage = { t: 'revoke', code: 'X', reason: 'r'.repeat(MAX_CONTROL_LINE_BYTES) }
  assert.throws(() => new ControlMessageDecoder().push(encodeControlMessage(m)), isControlError)
})

test('an over-long line without LF is rejected before it completes', () => {
  const d = new ControlMessageDecoder()
  d.push(Buffer.from('{"t":"revoke","reason":"'))
  assert.throws(() => {
    for (let i = 0; i < 10; i++) d.push(Buffer.alloc(1024, 0x61))
  }, isControlError)
})

test('an over-long line spread over chunks is rejected at its LF', () => {
  const d = new ControlMessageDecoder()
  d.push(Buffer.alloc(MAX_CONTROL_LINE_BYTES, 0x61))
  assert.throws(() => d.push(Buffer.from('a\n')), isControlError)
})

test('invalid JSON is rejected', () => {
  assert.throws(() => new ControlMessageDecoder().push(Buffer.from('{"t":"abort",\n')), isControlError)
  assert.throws(() => new ControlMessageDecoder().push(Buffer.from('\n')), isControlError)
})

test('unknown or invalid messages are rejected', () => {
  const bad = [
    { t: 'nope' },
    { t: 'abort' },
    { t: 'abort', id: 0 },
    { t: 'abort', id: -1 },
    { t: 'abort', id: 1.5 },
    { t: 'abort', id: '1' },
    { t: 'revoke', code: 'X' },
    { t: 'revoke', code: 1, reason: 'r' },
    null,
    42,
    'abort',
  ]
  for (const v of bad) {
    assert.throws(() => new ControlMessageDecoder().push(Buffer.from(JSON.stringify(v) + '\n')), isControlError, JSON.stringify(v))
  }
})

test('extra fields are stripped from decoded messages', () => {
  const out = new ControlMessageDecoder().push(Buffer.from('{"t":"abort","id":3,"extra":true}\n'))
  assert.deepEqual(out, [{ t: 'abort', id: 3 }])
})
