import assert from 'node:assert/strict'
import { createSecretKey, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { isTunnelError } from '../../errors/index.ts'
import { FORWARD_HEADER_MAC_BYTES, decodeForwardHeader, encodeForwardHeader } from './forward-header.ts'

const key = createSecretKey(randomBytes(32))
const header = { tunnelId: 'abc123', clientAddress: '203.0.113.7' }

function integrityError(err: unknown): boolean {
  return isTunnelError(err) && err.code === 'TUN_ERR_CLUSTER_BUS_INTEGRITY'
}

test('a forward header comes back whole, with the bytes behind it, byte by byte too', () => {
  const wire = Buffer.concat([encodeForwardHeader(header, key), Buffer.from('GET / HTTP/1.1\r\n')])
  assert.deepEqual(decodeForwardHeader(wire, key), { header, rest: Buffer.from('GET / HTTP/1.1\r\n') })
  const headerLength = wire.length - 16
  for (let n = 0; n < headerLength; n++) assert.equal(decodeForwardHeader(wire.subarray(0, n), key), undefined, `${n} bytes are not a header yet`)
})

test('a caller address changed on the way fails the MAC, and so does any other byte', () => {
  const wire = encodeForwardHeader(header, key)
  const forged = Buffer.from(wire.toString('latin1').replace('203.0.113.7', '203.0.113.8'), 'latin1')
  assert.throws(() => decodeForwardHeader(forged, key), integrityError)
  for (let i = 2; i < wire.length; i++) {
    const altered = Buffer.from(wire)
    altered[i] = altered[i]! ^ 0x01
    assert.throws(() => decodeForwardHeader(altered, key), (err) => isTunnelError(err), `byte ${i} altered`)
  }
  assert.equal(wire.length - 2 - FORWARD_HEADER_MAC_BYTES, JSON.stringify({ t: header.tunnelId, a: header.clientAddress }).length)
})

test('a header made under another key (another connection, or no key at all) is refused', () => {
  const other = createSecretKey(randomBytes(32))
  assert.throws(() => decodeForwardHeader(encodeForwardHeader(header, other), key), integrityError)
})
