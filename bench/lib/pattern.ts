import type { Writable } from 'node:stream'

/**
 * The bytes every bulk transfer carries: byte i of a body is (i * 31 + 7) & 0xff, the pattern the
 * test upstream's /bytes streams. It repeats every 256 bytes, so a receiver checks any chunk with
 * one memcmp against a prebuilt buffer instead of hashing a gigabyte.
 */
const PERIOD = 256
const REFERENCE = Buffer.alloc(64 * 1024 + PERIOD)
for (let i = 0; i < REFERENCE.length; i++) REFERENCE[i] = (i * 31 + 7) & 0xff

export class PatternVerifier {
  #offset = 0
  #mismatchAt = -1

  get bytes(): number {
    return this.#offset
  }

  /** offset of the first wrong byte, or -1 */
  get mismatchAt(): number {
    return this.#mismatchAt
  }

  update(chunk: Buffer): void {
    let pos = 0
    while (pos < chunk.length) {
      const take = Math.min(chunk.length - pos, 64 * 1024)
      const start = (this.#offset + pos) % PERIOD
      if (this.#mismatchAt < 0 && chunk.compare(REFERENCE, start, start + take, pos, pos + take) !== 0) {
        for (let i = 0; i < take; i++) {
          if (chunk[pos + i] !== REFERENCE[start + i]) {
            this.#mismatchAt = this.#offset + pos + i
            break
          }
        }
      }
      pos += take
    }
    this.#offset += chunk.length
  }
}

/** A 64 KiB block of the pattern starting at offset 0 (every write of a sender starts aligned). */
export const PATTERN_BLOCK = REFERENCE.subarray(0, 64 * 1024)

/** Writes `bytes` of the pattern to a socket in 64 KiB blocks, waiting for 'drain' when it is full. */
export function writePattern(socket: Writable, bytes: number): void {
  let left = bytes
  const pump = (): void => {
    while (left > 0) {
      const take = Math.min(left, PATTERN_BLOCK.length)
      left -= take
      if (!socket.write(take === PATTERN_BLOCK.length ? PATTERN_BLOCK : PATTERN_BLOCK.subarray(0, take))) {
        socket.once('drain', pump)
        return
      }
    }
  }
  pump()
}
