/**
 * Bytes that say where they are in a stream, distinct per `seed`: a chunk delivered out of place,
 * twice, or overwritten after delivery does not match. (The test app's download, test-upstream's
 * patternBytes(), repeats one 64 KiB block: it shows a length or a hash, not a chunk misplaced.)
 */
export function positionPattern(bytes: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(bytes)
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + seed * 31 + (i >>> 10)) & 0xff
  return b
}
