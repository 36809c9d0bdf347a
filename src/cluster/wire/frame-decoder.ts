import { TunnelError } from '../../errors/index.ts'

/**
 * Length-prefixed frames, the one framing of every cluster connection:
 *
 *   type u8 | length (u16 BE during authentication, u32 BE on the bus) | payload (length bytes)
 *
 * The handshake uses 2-byte lengths and at most 512 payload bytes; the bus after it uses 4-byte
 * lengths and a configurable maximum. The length is checked as soon as the header is complete, so
 * an oversize or lying length is refused before a single payload byte is buffered or allocated.
 */
export interface Frame {
  type: number
  payload: Buffer
}

export type LengthBytes = 2 | 4

export interface FrameFormat {
  lengthBytes: LengthBytes
  /** the largest payload accepted, in bytes */
  maxPayloadBytes: number
}

export function frameHeaderBytes(format: Pick<FrameFormat, 'lengthBytes'>): number {
  return 1 + format.lengthBytes
}

/** Encodes one frame; refuses (TUN_ERR_CLUSTER_FRAME_TOO_LARGE) a payload over the format's maximum. */
export function encodeFrame(format: FrameFormat, type: number, payload: Uint8Array = EMPTY): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 255) throw new RangeError(`frame type ${type} is not a byte`)
  if (payload.length > format.maxPayloadBytes) {
    throw new TunnelError('TUN_ERR_CLUSTER_FRAME_TOO_LARGE', `a ${payload.length}-byte frame exceeds the ${format.maxPayloadBytes}-byte limit`, {
      details: { bytes: payload.length, maxPayloadBytes: format.maxPayloadBytes },
    })
  }
  const header = frameHeaderBytes(format)
  const out = Buffer.allocUnsafe(header + payload.length)
  out[0] = type
  if (format.lengthBytes === 2) out.writeUInt16BE(payload.length, 1)
  else out.writeUInt32BE(payload.length, 1)
  out.set(payload, header)
  return out
}

const EMPTY = new Uint8Array(0)

/**
 * Incremental decoder: `push` bytes as they arrive, then pull whole frames with `next()`. Never
 * holds more than one header plus `maxPayloadBytes` of undelivered frame, plus whatever complete
 * frames the caller has not pulled yet (the caller decides when to stop pulling and take the rest).
 */
export class FrameDecoder {
  readonly #format: FrameFormat
  readonly #headerBytes: number
  #chunks: Buffer[] = []
  #buffered = 0

  constructor(format: FrameFormat) {
    if (!Number.isInteger(format.maxPayloadBytes) || format.maxPayloadBytes < 0 || format.maxPayloadBytes > maxLength(format.lengthBytes)) {
      throw new RangeError(`maxPayloadBytes ${format.maxPayloadBytes} does not fit a ${format.lengthBytes}-byte length`)
    }
    this.#format = format
    this.#headerBytes = frameHeaderBytes(format)
  }

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.#buffered
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
  }

  /**
   * The next complete frame, or undefined until more bytes arrive. Throws on an oversize length as
   * soon as its header is complete. (`push` does not judge: bytes after the last frame a caller
   * wants, such as bus frames behind the handshake's OK, belong to another format.)
   */
  next(): Frame | undefined {
    const length = this.#peekLength()
    if (length === undefined || this.#buffered < this.#headerBytes + length) return undefined
    const bytes = this.#take(this.#headerBytes + length)
    return { type: bytes[0]!, payload: bytes.subarray(this.#headerBytes) }
  }

  /** Hands back every byte not yet returned as a frame and empties the decoder. */
  takeRemainder(): Buffer {
    const rest = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered)
    this.#chunks = []
    this.#buffered = 0
    return rest
  }

  #peekLength(): number | undefined {
    if (this.#buffered < this.#headerBytes) return undefined
    const head = this.#peek(this.#headerBytes)
    const length = this.#format.lengthBytes === 2 ? head.readUInt16BE(1) : head.readUInt32BE(1)
    if (length > this.#format.maxPayloadBytes) {
      throw new TunnelError(
        'TUN_ERR_CLUSTER_FRAME_TOO_LARGE',
        `the peer announced a ${length}-byte frame (type ${head[0]}); the limit is ${this.#format.maxPayloadBytes} bytes`,
        { details: { bytes: length, maxPayloadBytes: this.#format.maxPayloadBytes } },
      )
    }
    return length
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0]!
    if (first.length >= n) return first
    // Merge the front chunks once; a peer writing one byte at a time must not cost a concat per byte.
    const merged = Buffer.concat(this.#chunks, this.#buffered)
    this.#chunks = [merged]
    return merged
  }

  #take(n: number): Buffer {
    const front = this.#peek(n)
    if (front.length === n) this.#chunks.shift()
    else this.#chunks[0] = front.subarray(n)
    this.#buffered -= n
    return front.subarray(0, n)
  }
}

function maxLength(lengthBytes: LengthBytes): number {
  return lengthBytes === 2 ? 0xffff : 0xffffffff
}
