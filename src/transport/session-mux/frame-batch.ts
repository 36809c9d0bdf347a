import { FRAME_HEADER_BYTES, MAX_DATA_PAYLOAD_BYTES, SessionFrameType, writeFrameHeader } from '../../protocol/index.ts'

/**
 * Bytes of one slab: seven full DATA frames with room for the small frames between them. A batch
 * that would outgrow the slab it started in is written first (see full()); otherwise it goes on in
 * another slab, two parts for that write.
 */
export const SLAB_BYTES = 8 * MAX_DATA_PAYLOAD_BYTES
/** Slabs kept for reuse by every session of the process; an idle session holds none. */
const FREE_SLABS_MAX = 4
/** DATA payloads up to this size, with nothing else in a slab yet, get a buffer of their own (request and response heads). */
const SMALL_PAYLOAD_BYTES = 1024

interface Slab {
  readonly bytes: Buffer
  /** batch parts cut from this slab that were not yet written (taken or not) */
  refs: number
}

const freeSlabs: Slab[] = []

function takeSlab(): Slab {
  return freeSlabs.pop() ?? { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), refs: 0 }
}

function giveBack(slab: Slab): void {
  if (freeSlabs.length < FREE_SLABS_MAX) freeSlabs.push(slab)
}

/** The bytes of one flush, and what to call once the socket wrote them. */
export interface TakenBatch {
  readonly parts: Buffer[]
  readonly bytes: number
  /** the write finished (`failed`: it may not have: its slabs are left to the collector) */
  written(failed: boolean): void
}

/**
 * The frames a session queued for its next write. DATA payloads are copied into a slab right behind
 * their header, so the caller's buffer is free again at once (an upstream socket reads every chunk
 * into the same memory) and a bulk batch leaves as one contiguous part: TLS encrypts it where it
 * lies, where several parts would first be joined into a fresh buffer. Small frames join the slab
 * when a batch is already being written there; alone they stay buffers of their own.
 *
 * A slab is written into only past the bytes a pending write holds: parts cut from it count as
 * references until the socket's write callback, and a slab goes back to the process's free list,
 * or is rewound, only when none is left. A slab still referenced when the batch needs room is left
 * to finish its writes and a free (or new) one is taken.
 */
export class FrameBatch {
  /** closed parts, in order; the open segment of the current slab follows them */
  #parts: Buffer[] = []
  /** the slab of each closed part that was cut from one (with repeats), released once written */
  #partSlabs: Slab[] = []
  #bytes = 0
  #slab: Slab | undefined
  /** where the open segment starts in the current slab */
  #segmentStart = 0
  /** where the next byte goes in the current slab */
  #at = 0

  /** bytes queued, not yet taken */
  get bytes(): number {
    return this.#bytes
  }

  get empty(): boolean {
    return this.#bytes === 0
  }

  /** A DATA frame of `payloadBytes` would not fit behind what this batch holds in its slab. */
  full(payloadBytes: number): boolean {
    return this.#slab !== undefined && this.#at > this.#segmentStart && this.#at + FRAME_HEADER_BYTES + payloadBytes > SLAB_BYTES
  }

  /** A ready frame, after everything queued. */
  push(frame: Buffer): void {
    const slab = this.#slab
    if (slab !== undefined && this.#at > this.#segmentStart && this.#at + frame.length <= SLAB_BYTES) {
      frame.copy(slab.bytes, this.#at)
      this.#at += frame.length
    } else {
      this.#closeSegment()
      this.#parts.push(frame)
    }
    this.#bytes += frame.length
  }

  /** A ready frame, ahead of everything queued (a ping and its answer measure liveness, not our backlog). */
  unshift(frame: Buffer): void {
    this.#parts.unshift(frame)
    this.#bytes += frame.length
  }

  /** A DATA frame; `payload` is copied before this returns (except small ones sent alone, which are copied too). */
  pushData(stream: number, flags: number, payload: Buffer): void {
    const n = payload.length
    const frameBytes = FRAME_HEADER_BYTES + n
    if (n <= SMALL_PAYLOAD_BYTES && !(this.#slab !== undefined && this.#at > this.#segmentStart && this.#at + frameBytes <= SLAB_BYTES)) {
      const frame = Buffer.allocUnsafe(frameBytes)
      writeFrameHeader(frame, 0, SessionFrameType.DATA, flags, stream, n)
      payload.copy(frame, FRAME_HEADER_BYTES)
      this.#closeSegment()
      this.#parts.push(frame)
      this.#bytes += frameBytes
      return
    }
    const slab = this.#roomFor(frameBytes)
    writeFrameHeader(slab.bytes, this.#at, SessionFrameType.DATA, flags, stream, n)
    payload.copy(slab.bytes, this.#at + FRAME_HEADER_BYTES)
    this.#at += frameBytes
    this.#bytes += frameBytes
  }

  /** Everything queued, for one write; the batch is empty after. */
  take(): TakenBatch {
    this.#closeSegment()
    const parts = this.#parts
    const slabs = this.#partSlabs
    const bytes = this.#bytes
    this.#parts = []
    this.#partSlabs = []
    this.#bytes = 0
    return { parts, bytes, written: (failed) => this.#written(slabs, failed) }
  }

  /** Drops what is queued and the current slab (writes still pending keep theirs alive until done). */
  clear(): void {
    this.#parts = []
    this.#partSlabs = []
    this.#bytes = 0
    if (this.#slab !== undefined && this.#slab.refs === 0) giveBack(this.#slab)
    this.#slab = undefined
    this.#segmentStart = this.#at = 0
  }

  /** The current slab, with room for `frameBytes` at #at. */
  #roomFor(frameBytes: number): Slab {
    let slab = this.#slab
    if (slab !== undefined && this.#at + frameBytes <= SLAB_BYTES) return slab
    this.#closeSegment()
    if (slab !== undefined && slab.refs === 0) {
      // Nothing of it is queued or being written: start over at its beginning.
      this.#segmentStart = this.#at = 0
      return slab
    }
    slab = takeSlab()
    this.#slab = slab
    this.#segmentStart = this.#at = 0
    return slab
  }

  /** Cuts the open segment of the current slab into a closed part. */
  #closeSegment(): void {
    const slab = this.#slab
    if (slab === undefined || this.#at === this.#segmentStart) return
    this.#parts.push(slab.bytes.subarray(this.#segmentStart, this.#at))
    this.#partSlabs.push(slab)
    slab.refs++
    this.#segmentStart = this.#at
  }

  #written(slabs: Slab[], failed: boolean): void {
    if (failed) return
    for (const slab of slabs) {
      slab.refs--
      if (slab.refs > 0) continue
      if (slab !== this.#slab) giveBack(slab)
      else if (this.#at === this.#segmentStart) {
        // Idle: an idle session holds no slab; one that goes on writing takes it back at once.
        this.#slab = undefined
        this.#segmentStart = this.#at = 0
        giveBack(slab)
      }
    }
  }
}
