/**
 * Where a session whose connection is read into one reused buffer (`onread`) keeps the DATA it
 * received until its owner has passed it on: each payload is copied behind the last one in a slab,
 * and the slab is written into again only once every payload cut from it was released. So a bulk
 * upload allocates nothing per read, where a socket's `data` event hands over a fresh buffer for
 * every TLS record (16 KiB) and the dead ones pile up until the collector runs (decision 56).
 *
 * Every session of the process shares one slab at a time and a short free list: reads are handled
 * one after another on the event loop. A payload its owner never releases only keeps its slab from
 * being reused; the slab then goes to the garbage collector with the last reference to it.
 */

/** Bytes of one slab: sixteen TLS records, or four full DATA payloads. */
export const RECEIVE_SLAB_BYTES = 256 * 1024
/**
 * Slabs kept for reuse (4 MiB): what one bulk stream's grown window can hold in its upstream
 * socket's queue. With fewer, a long upload drops slabs to the collector and takes new ones.
 */
const FREE_SLABS_MAX = 16

interface Slab {
  readonly bytes: Buffer
  /** payloads cut from this slab and not yet released */
  refs: number
  /** where the next payload goes */
  at: number
}

const slabOf = new WeakMap<ArrayBufferLike, Slab>()
const freeSlabs: Slab[] = []
let current: Slab | undefined

function newSlab(): Slab {
  const slab: Slab = { bytes: Buffer.allocUnsafeSlow(RECEIVE_SLAB_BYTES), refs: 0, at: 0 }
  slabOf.set(slab.bytes.buffer, slab)
  return slab
}

/**
 * A copy of `payload` (which is about to be overwritten) that stays valid until released.
 * Payloads larger than a slab get a buffer of their own, which release() ignores.
 */
export function keepReceived(payload: Buffer): Buffer {
  const n = payload.length
  if (n > RECEIVE_SLAB_BYTES) return Buffer.from(payload)
  let slab = current
  if (slab === undefined || slab.at + n > RECEIVE_SLAB_BYTES) {
    if (slab !== undefined && slab.refs === 0) slab.at = 0
    else current = slab = freeSlabs.pop() ?? newSlab()
  }
  const at = slab.at
  payload.copy(slab.bytes, at)
  slab.at = at + n
  slab.refs++
  return slab.bytes.subarray(at, at + n)
}

/**
 * The owner is done with a payload from keepReceived(): its bytes may be overwritten. Call it once
 * per payload, after the write that passed it on completed (or when the payload was dropped).
 * A buffer that did not come from keepReceived() is ignored.
 */
export function releaseReceived(payload: Buffer): void {
  const slab = slabOf.get(payload.buffer)
  if (slab === undefined || slab.refs === 0) return
  if (--slab.refs > 0) return
  if (slab === current) slab.at = 0
  else if (freeSlabs.length < FREE_SLABS_MAX) {
    slab.at = 0
    freeSlabs.push(slab)
  }
}

/** Slabs held for reuse and payloads not yet released (for tests). */
export function receiveSlabStats(): { free: number; currentRefs: number } {
  return { free: freeSlabs.length, currentRefs: current?.refs ?? 0 }
}
