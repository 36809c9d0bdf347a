import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError } from '../errors/index.ts'
import { decodeControlMessage, encodeControlMessage, type ControlMessage } from './control-message.ts'
import { MAX_CONTROL_PAYLOAD_BYTES } from './session-frame.ts'

const ready: ControlMessage = { t: 'ready' }
const revoke: ControlMessage = { t: 'revoke', code: 'TUN_ERR_KEY_REJECTED', reason: 'key rotated — reconnect ✓' }

function refusedWith(message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof TunnelError, 'a TunnelError')
    assert.equal(err.code, 'TUN_ERR_SESSION_PROTOCOL')
    assert.match(err.message, message)
    return true
  }
}

test('encoding is one JSON object, no line framing (a CONTROL frame carries exactly one)', () => {
  assert.equal(encodeControlMessage(ready).toString('utf8'), '{"t":"ready"}')
  assert.equal(encodeControlMessage(revoke).toString('utf8'), JSON.stringify(revoke))
})

test('round trip of each message type', () => {
  for (const m of [ready, revoke]) assert.deepEqual(decodeControlMessage(encodeControlMessage(m)), m)
})

test('extra fields are dropped, not passed on', () => {
  assert.deepEqual(decodeControlMessage(Buffer.from('{"t":"ready","x":1}')), { t: 'ready' })
  assert.deepEqual(decodeControlMessage(Buffer.from('{"t":"revoke","code":"C","reason":"R","id":3}')), { t: 'revoke', code: 'C', reason: 'R' })
})

test('not JSON, unknown types and wrong field types are refused with what is wrong', () => {
  assert.throws(() => decodeControlMessage(Buffer.from('{"t":')), refusedWith(/^control message is not JSON$/))
  assert.throws(() => decodeControlMessage(Buffer.from('')), refusedWith(/not JSON/))
  for (const bad of ['null', '[]', '"ready"', '{"t":"abort","id":1}', '{"t":"revoke","code":1,"reason":"r"}', '{"t":"revoke","code":"c"}', '{"__proto__":{"t":"ready"}}']) {
    assert.throws(() => decodeControlMessage(Buffer.from(bad)), refusedWith(/^unknown control message$/), bad)
  }
})

test('a revoke with a huge reason is cut to fit one CONTROL frame', () => {
  const b = encodeControlMessage({ t: 'revoke', code: 'TUN_ERR_TUNNEL_NOT_FOUND', reason: 'é'.repeat(5000) })
  assert.ok(b.length <= MAX_CONTROL_PAYLOAD_BYTES, `${b.length} bytes`)
  const m = decodeControlMessage(b)
  assert.equal(m.t, 'revoke')
})
