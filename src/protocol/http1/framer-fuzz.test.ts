import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError } from '../../errors/index.ts'
import { RequestFramer } from './request-framer.ts'
import { ResponseFramer } from './response-framer.ts'
import { SeededRandom } from './testing/seeded-random.ts'
import { generateRequestStream, generateResponseStream } from './testing/generate-message-streams.ts'
import { oneByteChunks, splitAt } from './testing/event-recorder.ts'
import { REQUEST_FRAMER_CODES } from './testing/framer-codes.ts'

// Mutated valid messages: the framer may accept or refuse them, but it must refuse with a
// TunnelError of the expected family, and body bytes must always be slices of what was fed so far.

const CASES_PER_SIDE = 10_000
const SPECIAL_BYTES = [0x0d, 0x0a, 0x20, 0x3a, 0x09, 0x00, 0x30, 0x3b, 0x22, 0x2c, 0x61, 0xff, 0x7f, 0x2d, 0x2b]
const REQUEST_CODES = new Set<string>(REQUEST_FRAMER_CODES)

function mutate(rng: SeededRandom, original: Buffer): Buffer {
  let bytes = Buffer.from(original)
  for (let n = rng.int(1, 3); n > 0; n--) {
    // Heads are where the interesting decisions are, so half the mutations land near the start.
    const limit = rng.chance(0.5) ? Math.min(bytes.length, 200) : bytes.length
    const at = rng.int(0, Math.max(0, limit - 1))
    switch (rng.int(0, 6)) {
      case 0:
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << rng.int(0, 7))
        break
      case 1:
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.of(rng.pick(SPECIAL_BYTES)), bytes.subarray(at)])
        break
      case 2:
        bytes = Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.int(1, 4)), bytes.subarray(at)])
        break
      case 3:
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + rng.int(1, 4))])
        break
      case 4:
        bytes = bytes.subarray(0, at)
        break
      case 5:
        if (bytes.length > 0) bytes[at] = rng.pick(SPECIAL_BYTES)
        break
      case 6: {
        const from = rng.int(0, bytes.length)
        const piece = bytes.subarray(from, from + rng.int(1, 40))
        bytes = Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at)])
        break
      }
    }
  }
  // A private ArrayBuffer, so "inside the fed prefix" can be checked by identity and offset.
  const own = Buffer.from(new ArrayBuffer(bytes.length))
  bytes.copy(own)
  return own
}

function pieces(rng: SeededRandom, bytes: Buffer): Buffer[] {
  if (rng.chance(0.1)) return oneByteChunks(bytes)
  return splitAt(bytes, rng.cuts(bytes.length, rng.int(0, 6)))
}

/** Asserts a body slice lies inside input[0, fed) of the one buffer all pieces come from. */
function checkSlice(chunk: Buffer, input: Buffer, fed: number, context: string): void {
  assert.ok(chunk.length > 0, `${context}: empty onBody chunk`)
  assert.equal(chunk.buffer, input.buffer, `${context}: onBody chunk is not a slice of the input`)
  assert.ok(chunk.byteOffset >= input.byteOffset && chunk.byteOffset + chunk.length <= input.byteOffset + fed, `${context}: onBody beyond the bytes fed`)
}

function checkFailure(err: unknown, codes: ReadonlySet<string>, context: string): void {
  if (!(err instanceof TunnelError)) throw new assert.AssertionError({ message: `${context}: threw a non-TunnelError: ${String(err)}` })
  assert.ok(codes.has(err.code), `${context}: unexpected code ${err.code} (${err.message})`)
}

describe('framer fuzz', () => {
  it('request framer: mutated input succeeds or throws a request TunnelError', () => {
    for (let seed = 1; seed <= CASES_PER_SIDE; seed++) {
      const rng = new SeededRandom(seed ^ 0x5bd1e995)
      const input = mutate(rng, generateRequestStream(rng, 3).bytes)
      const context = `request seed ${seed}`
      let fed = 0
      let emitted = 0
      const framer = new RequestFramer({
        onHead() {},
        onBody(chunk) {
          checkSlice(chunk, input, fed, context)
          emitted += chunk.length
        },
        onMessageEnd() {},
      })
      try {
        for (const piece of pieces(rng, input)) {
          fed += piece.length
          framer.push(piece)
          if (framer.state === 'awaiting-upgrade') {
            if (rng.chance(0.5)) {
              framer.upgradeAccepted()
              break
            }
            framer.upgradeDeclined()
          }
        }
      } catch (err) {
        checkFailure(err, REQUEST_CODES, context)
        assert.equal(framer.state, 'dead', context)
        assert.throws(() => framer.push(Buffer.from('GET / HTTP/1.1\r\n')), (again) => again === err, `${context}: dead framer must keep failing`)
      }
      assert.ok(emitted <= fed, `${context}: emitted ${emitted} body bytes of ${fed} fed`)
    }
  })

  it('response framer: mutated input succeeds or throws TUN_ERR_UPSTREAM_BAD_RESPONSE', () => {
    const codes = new Set(['TUN_ERR_UPSTREAM_BAD_RESPONSE'])
    for (let seed = 1; seed <= CASES_PER_SIDE; seed++) {
      const rng = new SeededRandom(seed ^ 0x1b873593)
      const stream = generateResponseStream(rng, 3)
      const input = mutate(rng, stream.bytes)
      const context = `response seed ${seed}`
      let fed = 0
      let emitted = 0
      const framer = new ResponseFramer({
        onHead() {},
        onBody(chunk) {
          checkSlice(chunk, input, fed, context)
          emitted += chunk.length
        },
        onMessageEnd() {},
        onUpgrade(rest) {
          if (rest.length > 0) checkSlice(rest, input, fed, context)
        },
      })
      for (const method of stream.methods) framer.expect(rng.chance(0.9) ? method : rng.pick(['HEAD', 'GET', 'CONNECT']))
      try {
        for (const piece of pieces(rng, input)) {
          if (framer.state === 'upgraded') break
          fed += piece.length
          framer.push(piece)
        }
        if (framer.state !== 'upgraded' && rng.chance(0.8)) framer.end()
      } catch (err) {
        checkFailure(err, codes, context)
        assert.equal(framer.state, 'dead', context)
      }
      assert.ok(emitted <= fed, `${context}: emitted ${emitted} body bytes of ${fed} fed`)
    }
  })
})
