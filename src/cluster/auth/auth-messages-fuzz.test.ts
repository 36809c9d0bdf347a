import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { TunnelError } from '../../errors/index.ts'
import { SeededRandom } from '../../protocol/http1/testing/seeded-random.ts'
import { decodeChallenge, decodeErr, decodeOk, decodeProof, encodeChallenge, encodeProof } from './auth-messages.ts'

// Mutated handshake payloads: each decoder either returns a message that re-encodes to exactly the
// bytes it was given, or refuses with TUN_ERR_CLUSTER_AUTH_PROTOCOL. Nothing else, ever.

const CASES = 4000

function mutate(rng: SeededRandom, original: Buffer): Buffer {
  let bytes = Buffer.from(original)
  for (let n = rng.int(1, 3); n > 0; n--) {
    const at = rng.int(0, Math.max(0, bytes.length - 1))
    switch (rng.int(0, 3)) {
      case 0:
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << rng.int(0, 7))
        break
      case 1:
        bytes = Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.int(1, 4)), bytes.subarray(at)])
        break
      case 2:
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + rng.int(1, 4))])
        break
      case 3:
        bytes = bytes.subarray(0, at)
        break
    }
  }
  return bytes
}

test('mutated CHALLENGE, PROOF, OK and ERR payloads decode exactly or are refused as protocol errors', () => {
  const rng = new SeededRandom(0xa77b)
  const challenge = encodeChallenge({ versionMin: 1, versionMax: 1, flags: 0, kid: randomBytes(8), nonce: randomBytes(32), nodeId: 'node-a' })
  const proof = encodeProof({ version: 1, flags: 0, kid: randomBytes(8), nonce: randomBytes(32), nodeId: 'node.b_2', mac: randomBytes(32) })
  const decoders: Array<[Buffer, (b: Buffer) => Buffer]> = [
    [challenge, (b) => encodeChallenge(decodeChallenge(b))],
    [proof, (b) => encodeProof(decodeProof(b))],
    [randomBytes(32), (b) => decodeOk(b)],
    [Buffer.of(3), (b) => (decodeErr(b), b)],
  ]
  let accepted = 0
  for (let n = 0; n < CASES; n++) {
    const [original, roundTrip] = rng.pick(decoders)
    const input = rng.chance(0.1) ? rng.bytes(rng.int(0, 200)) : mutate(rng, original)
    try {
      assert.deepEqual(roundTrip(input), input, `case ${n}: a decoded message re-encodes to its bytes`)
      accepted++
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err
      assert.ok(err instanceof TunnelError, `case ${n}: ${String(err)}`)
      assert.equal(err.code, 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')
    }
  }
  assert.ok(accepted > 0 && accepted < CASES)
})
