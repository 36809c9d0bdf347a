import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { TunnelError, type ErrorCode } from '../../errors/index.ts'
import { FrameDecoder, encodeFrame } from '../wire/frame-decoder.ts'
import {
  AUTH_FRAME_FORMAT,
  FRAME_CHALLENGE,
  FRAME_ERR,
  FRAME_OK,
  FRAME_PROOF,
  KID_BYTES,
  MAC_BYTES,
  MAGIC,
  NONCE_BYTES,
  WIRE_ERRORS,
  decodeChallenge,
  decodeErr,
  decodeOk,
  decodeProof,
  encodeChallenge,
  encodeProof,
  type Challenge,
  type Proof,
} from './auth-messages.ts'
import { outcome, fuzzSeed } from '../../testing/fuzz.ts'
import { SeededRandom } from '../../testing/seeded-random.ts'

// Property-based fuzzing of the cluster handshake messages a peer sends before it is authenticated:
// every payload decodes to exactly what the documented byte layout says, re-encoding to the same
// bytes, or is refused with TUN_ERR_CLUSTER_AUTH_PROTOCOL; never another exception.
// FUZZ_SEED=<n> explores another sequence; fast-check prints the seed of a failure.

const seed = fuzzSeed(0xa7c4b)
const RUNS = 2500
const AUTH_CODES: readonly ErrorCode[] = ['TUN_ERR_CLUSTER_AUTH_PROTOCOL']
/** outcome() with this file's refusal code as the default */
const refusedOr = <T>(work: () => T, codes: readonly ErrorCode[] = AUTH_CODES) => outcome(work, codes)
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/


// ---- reference readings of the layouts in docs/cluster.md -------------------------------------

/** CHALLENGE: "ATCB" | versionMin | versionMax | flags | kid (8) | nonce (32) | idLen | id. */
function referenceChallenge(b: Buffer): Challenge | undefined {
  const fixed = 4 + 3 + KID_BYTES + NONCE_BYTES
  if (b.length < fixed + 1 || !b.subarray(0, 4).equals(MAGIC)) return undefined
  const idLen = b[fixed]!
  if (b.length !== fixed + 1 + idLen) return undefined
  const nodeId = b.subarray(fixed + 1).toString('latin1')
  if (!NODE_ID.test(nodeId) || b[4]! > b[5]!) return undefined
  return { versionMin: b[4]!, versionMax: b[5]!, flags: b[6]!, kid: b.subarray(7, 7 + KID_BYTES), nonce: b.subarray(7 + KID_BYTES, fixed), nodeId }
}

/** PROOF: version | flags | kid (8) | nonce (32) | idLen | id | mac (32). */
function referenceProof(b: Buffer): Proof | undefined {
  const fixed = 2 + KID_BYTES + NONCE_BYTES
  if (b.length < fixed + 1) return undefined
  const idLen = b[fixed]!
  if (b.length !== fixed + 1 + idLen + MAC_BYTES) return undefined
  const nodeId = b.subarray(fixed + 1, fixed + 1 + idLen).toString('latin1')
  if (!NODE_ID.test(nodeId)) return undefined
  return { version: b[0]!, flags: b[1]!, kid: b.subarray(2, 2 + KID_BYTES), nonce: b.subarray(2 + KID_BYTES, fixed), nodeId, mac: b.subarray(fixed + 1 + idLen) }
}

// ---- generators -------------------------------------------------------------------------------

const byte = fc.integer({ min: 0, max: 255 })
const bytes = (n: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b))
const nodeId = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/)
const challenge: fc.Arbitrary<Challenge> = fc.record({ versionMin: byte, versionMax: byte, flags: byte, kid: bytes(KID_BYTES), nonce: bytes(NONCE_BYTES), nodeId }).map((c) => ({ ...c, versionMax: Math.max(c.versionMin, c.versionMax) }))
const proof: fc.Arbitrary<Proof> = fc.record({ version: byte, flags: byte, kid: bytes(KID_BYTES), nonce: bytes(NONCE_BYTES), nodeId, mac: bytes(MAC_BYTES) })

/** A node id field: a valid id or arbitrary latin1 bytes, with its own length or a lying one. */
const idField = fc
  .tuple(fc.oneof({ arbitrary: nodeId.map((s) => Buffer.from(s, 'latin1')), weight: 3 }, fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)), fc.constantFrom(Buffer.alloc(0), Buffer.alloc(65, 0x61), Buffer.from('a b'), Buffer.from('ü', 'latin1'))), fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, byte))
  .map(([id, lie]) => Buffer.concat([Buffer.of(lie ?? Math.min(id.length, 255)), id]))
/** Damage applied to a near-valid payload: none, truncation, or trailing junk. */
const damage = fc.oneof({ arbitrary: fc.constant((b: Buffer) => b), weight: 3 }, fc.nat().map((n) => (b: Buffer) => b.subarray(0, n % (b.length + 1))), fc.uint8Array({ minLength: 1, maxLength: 4 }).map((t) => (b: Buffer) => Buffer.concat([b, t])))

const nearChallenge = fc
  .tuple(
    fc.oneof({ arbitrary: fc.constant(MAGIC), weight: 4 }, bytes(4), fc.constantFrom(Buffer.from('ATCb'), Buffer.from('ATC'), Buffer.from('HTTP'), Buffer.from('\x16\x03\x01\x00', 'latin1'))),
    bytes(3),
    bytes(KID_BYTES + NONCE_BYTES),
    idField,
    damage,
  )
  .map(([magic, versions, keys, id, d]) => d(Buffer.concat([magic, versions, keys, id])))
const nearProof = fc.tuple(bytes(2 + KID_BYTES + NONCE_BYTES), idField, bytes(MAC_BYTES), damage).map(([head, id, mac, d]) => d(Buffer.concat([head, id, mac])))
const anyPayload = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b))

// ---- properties -------------------------------------------------------------------------------

test('CHALLENGE: exactly the documented layout is accepted and re-encodes to its bytes; anything else is AUTH_PROTOCOL', () => {
  fc.assert(
    fc.property(fc.oneof({ arbitrary: nearChallenge, weight: 4 }, anyPayload, challenge.map(encodeChallenge)), (payload) => {
      const out = refusedOr(() => decodeChallenge(payload))
      const expected = referenceChallenge(payload)
      if (expected === undefined) assert.ok('error' in out, `accepted ${payload.toString('hex')}`)
      else {
        assert.deepEqual(out, { value: expected })
        assert.ok(encodeChallenge((out as { value: Challenge }).value).equals(payload))
      }
    }),
    { numRuns: RUNS, seed },
  )
})

test('PROOF: exactly the documented layout is accepted and re-encodes to its bytes; anything else is AUTH_PROTOCOL', () => {
  fc.assert(
    fc.property(fc.oneof({ arbitrary: nearProof, weight: 4 }, anyPayload, proof.map(encodeProof)), (payload) => {
      const out = refusedOr(() => decodeProof(payload))
      const expected = referenceProof(payload)
      if (expected === undefined) assert.ok('error' in out, `accepted ${payload.toString('hex')}`)
      else {
        assert.deepEqual(out, { value: expected })
        assert.ok(encodeProof((out as { value: Proof }).value).equals(payload))
      }
    }),
    { numRuns: RUNS, seed },
  )
})

test('OK carries exactly 32 bytes; ERR exactly one reason byte (an unknown reason reads as AUTH_PROTOCOL)', () => {
  fc.assert(
    fc.property(fc.oneof(anyPayload, bytes(MAC_BYTES), fc.integer({ min: 0, max: 3 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b)))), (payload) => {
      const ok = refusedOr(() => decodeOk(payload))
      if (payload.length === MAC_BYTES) assert.ok('value' in ok && ok.value.equals(payload))
      else assert.ok('error' in ok && /OK frame carries 32 bytes/.test(ok.error.message))
      const err = refusedOr(() => decodeErr(payload))
      if (payload.length === 1) {
        const known = (WIRE_ERRORS as Record<number, ErrorCode>)[payload[0]!]
        assert.deepEqual(err, { value: known ?? 'TUN_ERR_CLUSTER_AUTH_PROTOCOL' })
      } else assert.ok('error' in err && /ERR frame carries 1 byte/.test(err.error.message))
    }),
    { numRuns: RUNS, seed },
  )
})

test('encode → decode round-trips any valid CHALLENGE and PROOF', () => {
  fc.assert(
    fc.property(challenge, proof, (c, p) => {
      assert.deepEqual(refusedOr(() => decodeChallenge(encodeChallenge(c))), { value: { ...c } })
      assert.deepEqual(refusedOr(() => decodeProof(encodeProof(p))), { value: { ...p } })
    }),
    { numRuns: RUNS, seed },
  )
})

test('a pre-authentication byte stream in arbitrary chunks gives messages, FRAME_TOO_LARGE or AUTH_PROTOCOL, nothing else', () => {
  const frame = fc.oneof(
    fc.tuple(fc.constant(FRAME_CHALLENGE), fc.oneof(nearChallenge, challenge.map(encodeChallenge))),
    fc.tuple(fc.constant(FRAME_PROOF), fc.oneof(nearProof, proof.map(encodeProof))),
    fc.tuple(fc.constant(FRAME_OK), fc.oneof(bytes(MAC_BYTES), anyPayload)),
    fc.tuple(fc.constant(FRAME_ERR), fc.oneof(bytes(1), anyPayload)),
    fc.tuple(fc.integer({ min: 1, max: 4 }), anyPayload),
  )
  const segment = fc.oneof({ arbitrary: frame.map(([t, p]) => encodeFrame(AUTH_FRAME_FORMAT, t, p)), weight: 4 }, fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => Buffer.from(b)))
  const input = fc.array(segment, { minLength: 1, maxLength: 5 }).chain((parts) => {
    const all = Buffer.concat(parts)
    return fc.array(fc.integer({ min: 0, max: all.length }), { maxLength: 8 }).map((cuts) => ({ all, cuts: [...cuts, all.length].sort((a, b) => a - b) }))
  })
  const decoders: Record<number, (b: Buffer) => unknown> = { [FRAME_CHALLENGE]: decodeChallenge, [FRAME_PROOF]: decodeProof, [FRAME_OK]: decodeOk, [FRAME_ERR]: decodeErr }
  fc.assert(
    fc.property(input, ({ all, cuts }) => {
      const d = new FrameDecoder(AUTH_FRAME_FORMAT)
      let at = 0
      refusedOr(() => {
        for (const cut of cuts) {
          d.push(all.subarray(at, cut))
          at = cut
          for (let f = d.next(); f !== undefined; f = d.next()) {
            const decode = decoders[f.type]
            if (decode !== undefined) decode(f.payload)
          }
        }
      }, ['TUN_ERR_CLUSTER_FRAME_TOO_LARGE', 'TUN_ERR_CLUSTER_AUTH_PROTOCOL'])
    }),
    { numRuns: RUNS, seed },
  )
})

// ── seeded mutations ─────────────────────────────────────────────────────────────────────────────
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
