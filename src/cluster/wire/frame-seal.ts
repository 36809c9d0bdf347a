import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto'
import { TunnelError } from '../../errors/index.ts'
import { encodeFrame, type Frame, type FrameFormat } from './frame-decoder.ts'

/**
 * Integrity of bus frames after the handshake. Every frame carries, behind its payload, a MAC:
 *
 *   type u8 | length u32 (payload + 32) | payload | HMAC-SHA256(K_dir, seq u64 · type u8 · len u32 · payload)
 *
 * `seq` is implicit: each direction of a link counts its frames from 0, and TCP delivers them in
 * order, so the receiver knows the number without reading it off the wire. `K_dir` is the link's
 * key for that direction (derived from the handshake transcript: auth/auth-transcript.ts). Hence a
 * frame altered, injected, dropped, reordered, replayed within the link, replayed into another
 * link, or reflected back to its sender fails the check. `len` is the payload's length; it is
 * implied by the frame too, but costs nothing and keeps the MAC input unambiguous on its own.
 *
 * Pure: no I/O, no clock, no randomness — the link writes what `seal` returns, in that order.
 */
export const FRAME_MAC_BYTES = 32

/** The decoder format of sealed frames: the MAC rides inside the length. */
export function sealedFormat(format: FrameFormat): FrameFormat {
  return { lengthBytes: format.lengthBytes, maxPayloadBytes: format.maxPayloadBytes + FRAME_MAC_BYTES }
}

function mac(key: KeyObject, seq: number, type: number, payload: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(13)
  head.writeBigUInt64BE(BigInt(seq), 0)
  head[8] = type
  head.writeUInt32BE(payload.length, 9)
  return createHmac('sha256', key).update(head).update(payload).digest()
}

/** One direction's sending half: numbers and MACs frames in the order they are written. */
export class FrameSealer {
  readonly #format: FrameFormat
  readonly #key: KeyObject
  #seq = 0

  constructor(format: FrameFormat, key: KeyObject) {
    this.#format = format
    this.#key = key
  }

  /** frames sealed so far: the sequence number of the next one */
  get sequence(): number {
    return this.#seq
  }

  /** The whole wire frame; refuses (TUN_ERR_CLUSTER_FRAME_TOO_LARGE) a payload over the format's maximum. */
  seal(type: number, payload: Uint8Array = EMPTY): Buffer {
    // encodeFrame checks type and size against the unsealed limit, then the MAC goes in behind.
    const plain = encodeFrame(this.#format, type, payload)
    const out = Buffer.allocUnsafe(plain.length + FRAME_MAC_BYTES)
    plain.copy(out)
    out.writeUInt32BE(payload.length + FRAME_MAC_BYTES, 1)
    mac(this.#key, this.#seq++, type, payload).copy(out, plain.length)
    return out
  }
}

/** One direction's receiving half: checks each frame against the next sequence number. */
export class FrameOpener {
  readonly #key: KeyObject
  #seq = 0
  #failed = false

  constructor(key: KeyObject) {
    this.#key = key
  }

  /** frames opened so far: the sequence number expected next */
  get sequence(): number {
    return this.#seq
  }

  /**
   * The frame with its MAC checked and removed. Throws TUN_ERR_CLUSTER_BUS_INTEGRITY when it does
   * not verify; after that every frame fails too (the stream can no longer be trusted to be in step).
   */
  open(frame: Frame): Frame {
    if (this.#failed) throw integrityError(this.#seq, frame.type, 'an earlier frame failed')
    const { payload } = frame
    if (payload.length < FRAME_MAC_BYTES) {
      this.#failed = true
      throw integrityError(this.#seq, frame.type, `${payload.length} bytes cannot hold a ${FRAME_MAC_BYTES}-byte MAC`)
    }
    const body = payload.subarray(0, payload.length - FRAME_MAC_BYTES)
    const received = payload.subarray(payload.length - FRAME_MAC_BYTES)
    if (!timingSafeEqual(mac(this.#key, this.#seq, frame.type, body), received)) {
      this.#failed = true
      throw integrityError(this.#seq, frame.type, 'the MAC does not verify')
    }
    this.#seq++
    return { type: frame.type, payload: body }
  }
}

const EMPTY = new Uint8Array(0)

function integrityError(seq: number, type: number, why: string): TunnelError {
  return new TunnelError('TUN_ERR_CLUSTER_BUS_INTEGRITY', `bus frame ${seq} (type ${type}) refused: ${why}`, { details: { seq, type } })
}
