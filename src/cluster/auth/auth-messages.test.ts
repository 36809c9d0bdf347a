import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { TunnelError } from '../../errors/index.ts'
import {
  KID_BYTES,
  MAC_BYTES,
  NONCE_BYTES,
  WIRE_ERRORS,
  decodeChallenge,
  decodeErr,
  decodeOk,
  decodeProof,
  encodeChallenge,
  encodeProof,
  wireByteOf,
  type Challenge,
  type Proof,
} from './auth-messages.ts'
import { clientMac, deriveClusterKey, macEquals, serverMac, transcript } from './auth-transcript.ts'

const challenge: Challenge = { versionMin: 1, versionMax: 1, flags: 0, kid: randomBytes(KID_BYTES), nonce: randomBytes(NONCE_BYTES), nodeId: 'server-a' }
const proof: Proof = { version: 1, flags: 0, kid: challenge.kid, nonce: randomBytes(NONCE_BYTES), nodeId: 'node_b.2', mac: randomBytes(MAC_BYTES) }

function protocolError(err: unknown): boolean {
  assert.ok(err instanceof TunnelError)
  assert.equal(err.code, 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')
  return true
}

test('CHALLENGE and PROOF round-trip with exact sizes', () => {
  const c = encodeChallenge(challenge)
  assert.equal(c.length, 4 + 3 + KID_BYTES + NONCE_BYTES + 1 + 'server-a'.length)
  assert.deepEqual(decodeChallenge(c), challenge)
  const p = encodeProof(proof)
  assert.equal(p.length, 2 + KID_BYTES + NONCE_BYTES + 1 + 'node_b.2'.length + MAC_BYTES)
  assert.deepEqual(decodeProof(p), proof)
})

test('every truncation and every extension of a message is refused (lying lengths)', () => {
  const c = encodeChallenge(challenge)
  const p = encodeProof(proof)
  for (let n = 0; n < c.length; n++) assert.throws(() => decodeChallenge(c.subarray(0, n)), protocolError)
  for (let n = 0; n < p.length; n++) assert.throws(() => decodeProof(p.subarray(0, n)), protocolError)
  assert.throws(() => decodeChallenge(Buffer.concat([c, Buffer.of(0)])), protocolError)
  assert.throws(() => decodeProof(Buffer.concat([p, Buffer.of(0)])), protocolError)
  // A node-id length that points past the end, or swallows the MAC.
  const lying = Buffer.from(p)
  lying[2 + KID_BYTES + NONCE_BYTES] = 200
  assert.throws(() => decodeProof(lying), protocolError)
  assert.throws(() => decodeOk(Buffer.alloc(31)), protocolError)
})

test('bad magic, invalid node ids and inverted version ranges are refused', () => {
  const c = encodeChallenge(challenge)
  const badMagic = Buffer.from(c)
  badMagic[0] = 0x58
  assert.throws(() => decodeChallenge(badMagic), /bad magic/)
  const badId = Buffer.from(c)
  badId[badId.length - 1] = 0x20 // a space inside the id
  assert.throws(() => decodeChallenge(badId), protocolError)
  const emptyId = Buffer.concat([c.subarray(0, 4 + 3 + KID_BYTES + NONCE_BYTES), Buffer.of(0)])
  assert.throws(() => decodeChallenge(emptyId), protocolError)
  assert.throws(() => decodeChallenge(encodeChallenge({ ...challenge, versionMin: 2, versionMax: 1 })), protocolError)
})

test('ERR reasons map to stable codes both ways; unknown bytes read as a protocol error', () => {
  for (const [byte, code] of Object.entries(WIRE_ERRORS)) {
    assert.equal(decodeErr(Buffer.of(Number(byte))), code)
    assert.equal(wireByteOf(code), Number(byte))
  }
  assert.equal(decodeErr(Buffer.of(200)), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')
  assert.throws(() => decodeErr(Buffer.alloc(2)), protocolError)
  assert.equal(wireByteOf('TUN_ERR_CLUSTER_AUTH_TIMEOUT'), undefined, 'a timeout is never sent: it just closes')
})

test('key derivation: stable per secret, different per secret, kid independent of the MAC keys', () => {
  const a = deriveClusterKey('secret-one')
  const again = deriveClusterKey('secret-one')
  const b = deriveClusterKey('secret-two')
  assert.equal(a.kid.length, KID_BYTES)
  assert.equal(a.kidHex, again.kidHex)
  assert.notEqual(a.kidHex, b.kidHex)
  assert.ok(!a.clientToServer.equals(a.serverToClient), 'direction keys differ')
  assert.throws(() => deriveClusterKey(''), TypeError)
})

test('MACs: role-separated, bound to the whole transcript, compared in constant time', () => {
  const key = deriveClusterKey('k')
  const t = transcript(challenge, proof)
  const c = clientMac(key, t)
  const s = serverMac(key, t)
  assert.equal(c.length, MAC_BYTES)
  assert.ok(!c.equals(s), "a server's MAC is never a client's MAC (reflection)")
  assert.ok(macEquals(clientMac(deriveClusterKey('k'), transcript(challenge, proof)), c))
  // Each field of either message changes the transcript.
  const variants: Array<[Challenge, Omit<Proof, 'mac'>]> = [
    [{ ...challenge, nonce: randomBytes(NONCE_BYTES) }, proof],
    [challenge, { ...proof, nonce: randomBytes(NONCE_BYTES) }],
    [{ ...challenge, nodeId: 'server-b' }, proof],
    [challenge, { ...proof, nodeId: 'node_c' }],
    [{ ...challenge, flags: 1 }, proof],
    [challenge, { ...proof, kid: randomBytes(KID_BYTES) }],
    [{ ...challenge, versionMax: 2 }, proof],
  ]
  for (const [ch, pr] of variants) assert.ok(!macEquals(clientMac(key, transcript(ch, pr)), c))
  // Ids are length-prefixed: moving a character from one id to the other changes the transcript.
  const shifted = transcript({ ...challenge, nodeId: 'server-' }, { ...proof, nodeId: 'anode_b.2' })
  assert.ok(!t.equals(shifted))
  assert.equal(macEquals(c, c.subarray(0, 31)), false, 'a short MAC is refused without throwing')
})
