import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError } from '../errors/index.ts'
import { MAX_REPLICAS, decodeControlMessage, encodeControlMessage, fitReplicaList, type ControlMessage } from './control-message.ts'
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

const PIN = Buffer.alloc(32, 7).toString('base64url')
const replicas: ControlMessage = {
  t: 'replicas',
  self: 'replica-1',
  replicas: [
    { id: 'replica-1', url: 'https://10.0.0.1:8443', pin: PIN },
    { id: 'replica-2', url: 'https://tunnel-2.example.com' },
  ],
}

test('round trip of each message type', () => {
  for (const m of [ready, revoke, replicas]) assert.deepEqual(decodeControlMessage(encodeControlMessage(m)), m)
})

test('a replica list is refused when an entry could send the agent somewhere wrong', () => {
  const base = { t: 'replicas', self: 'replica-1' }
  const cases: Array<[unknown, RegExp]> = [
    [{ ...base, self: 'bad id!' }, /self must be a node id/],
    [{ ...base, replicas: 'x' }, /replicas must be a list of at most 32/],
    [{ ...base, replicas: Array.from({ length: 33 }, (_, i) => ({ id: `r${i}`, url: `https://r${i}.example` })) }, /at most 32/],
    [{ ...base, replicas: [{ id: 'a b', url: 'https://a.example' }] }, /a replica id is not a node id/],
    [{ ...base, replicas: [{ id: 'r', url: 'http://a.example' }] }, /replica r has no https origin/],
    [{ ...base, replicas: [{ id: 'r', url: 'https://a.example/path' }] }, /replica r has no https origin/],
    [{ ...base, replicas: [{ id: 'r', url: 'not a url' }] }, /no https origin/],
    [{ ...base, replicas: [{ id: 'r', url: 'https://a.example', pin: 'short' }] }, /replica r has an invalid certificate pin/],
    [{ ...base, replicas: [{ id: 'r', url: 'https://a.example' }, { id: 'r', url: 'https://b.example' }] }, /replica r is listed twice/],
  ]
  for (const [m, why] of cases) {
    assert.throws(() => decodeControlMessage(Buffer.from(JSON.stringify(m))), refusedWith(why), JSON.stringify(m).slice(0, 80))
  }
  assert.deepEqual(decodeControlMessage(Buffer.from(JSON.stringify({ ...base, replicas: [] }))), { t: 'replicas', self: 'replica-1', replicas: [] })
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

test('a replica list is cut to what one CONTROL frame carries, this replica first, so agents never refuse it', () => {
  const long = (i: number) => ({ id: `replica-${String(i).padStart(56, '0')}`, url: `https://replica-${i}.${'x'.repeat(200)}.example:8443`, pin: PIN })
  const all = Array.from({ length: 40 }, (_, i) => long(i))
  const fitted = fitReplicaList(long(30).id, all)
  assert.equal(fitted[0]!.id, long(30).id, 'self first')
  assert.ok(fitted.length >= 2 && fitted.length < MAX_REPLICAS, `${fitted.length} fit`)
  const bytes = encodeControlMessage({ t: 'replicas', self: long(30).id, replicas: fitted })
  assert.ok(bytes.length <= MAX_CONTROL_PAYLOAD_BYTES, `${bytes.length} bytes`)
  assert.deepEqual(decodeControlMessage(bytes), { t: 'replicas', self: long(30).id, replicas: fitted })
  const one = fitted.length
  assert.ok(encodeControlMessage({ t: 'replicas', self: long(30).id, replicas: [...fitted, all.find((r) => !fitted.includes(r))!] }).length > MAX_CONTROL_PAYLOAD_BYTES, `the ${one + 1}th would not fit`)
  const short = Array.from({ length: 40 }, (_, i) => ({ id: `r${i}`, url: `https://r${i}.example` }))
  assert.equal(fitReplicaList('r0', short).length, MAX_REPLICAS, 'short entries: the count limit')
})
