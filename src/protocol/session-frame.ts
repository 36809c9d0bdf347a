import { TunnelError } from '../errors/index.ts'

/**
 * The frames of an agent session: what flows on the agent's TLS socket after the 101 of the
 * connect handshake (docs/protocol.md, decision 32). Pure: no I/O, no timers.
 *
 *   0        3      4       5              9
 *   ┌────────┬──────┬───────┬──────────────┬───────────────┐
 *   │ len u24│ type │ flags │ stream u32   │ payload (len) │
 *   └────────┴──────┴───────┴──────────────┴───────────────┘
 *
 * The server opens streams (one per public client connection, ids 1, 2, 3, … never reused); the
 * agent answers them. Stream 0 is the session itself. A length is checked against its type's
 * limit before a byte of the payload is kept; DATA payloads are handed on as they arrive, slice by
 * slice, never copied or held whole.
 */
export const SessionFrameType = {
  /** stream bytes, either way; FLAG_END: the sender's last bytes on the stream */
  DATA: 0,
  /** server → agent: a new stream; payload: the public client's address (UTF-8) */
  OPEN: 1,
  /** agent → server: the upstream connection is open (nothing was relayed before it) */
  ACCEPT: 2,
  /** agent → server: the upstream could not be reached; payload JSON {code, message}; the stream is done */
  REFUSE: 3,
  /** either way: the stream ends now, both directions (server: drop the upstream; agent: it failed or was never used) */
  ABORT: 4,
  /** either way: the receiver consumed bytes; payload u32, bytes more the sender may send on the stream */
  CREDIT: 5,
  /** stream 0, the first frame each side sends: u32 stream window, u32 max open streams, u32 max DATA payload */
  SETTINGS: 6,
  /** stream 0: liveness; 8 opaque bytes, echoed with FLAG_ACK */
  PING: 7,
  /** stream 0: the sender is leaving: no new streams (server) or none accepted (agent); open ones finish */
  GOAWAY: 8,
  /** stream 0: one JSON control message (control-message.ts) */
  CONTROL: 9,
} as const

export type SessionFrameTypeCode = (typeof SessionFrameType)[keyof typeof SessionFrameType]

export const FRAME_HEADER_BYTES = 9
/** DATA: the sender's last bytes on this stream */
export const FLAG_END = 0x1
/** PING: this is the answer */
export const FLAG_ACK = 0x1
/** Largest DATA payload either side may send; bigger writes are split (a socket read is at most 64 KiB). */
export const MAX_DATA_PAYLOAD_BYTES = 64 * 1024
/** Largest payload of every frame but DATA. */
export const MAX_CONTROL_PAYLOAD_BYTES = 4096
export const SETTINGS_PAYLOAD_BYTES = 12
/**
 * The stream window both ends announce in SETTINGS: bytes the peer may send on one relay before
 * the receiver grants more (decision 32). One value for server and agent, so a change is one edit.
 */
export const STREAM_WINDOW_BYTES = 1024 * 1024
/** Stream ids are u32 and never reused: a session that used them all opens no more (it drains). */
export const MAX_STREAM_ID = 0xffff_ffff

const NAMES = ['DATA', 'OPEN', 'ACCEPT', 'REFUSE', 'ABORT', 'CREDIT', 'SETTINGS', 'PING', 'GOAWAY', 'CONTROL'] as const

/** Which flags each type may carry, and whether it lives on stream 0. */
const RULES: ReadonlyArray<{ flags: number; session: boolean; exactBytes?: number; minBytes?: number }> = [
  { flags: FLAG_END, session: false }, // DATA
  { flags: 0, session: false }, // OPEN
  { flags: 0, session: false, exactBytes: 0 }, // ACCEPT
  { flags: 0, session: false }, // REFUSE
  { flags: 0, session: false, exactBytes: 0 }, // ABORT
  { flags: 0, session: false, exactBytes: 4 }, // CREDIT
  { flags: 0, session: true, minBytes: SETTINGS_PAYLOAD_BYTES }, // SETTINGS
  { flags: FLAG_ACK, session: true, exactBytes: 8 }, // PING
  { flags: 0, session: true, exactBytes: 0 }, // GOAWAY
  { flags: 0, session: true }, // CONTROL
]

export function frameTypeName(type: number): string {
  return NAMES[type] ?? `type ${type}`
}

function protocolError(message: string): TunnelError {
  return new TunnelError('TUN_ERR_SESSION_PROTOCOL', message)
}

/** The 9-byte header of a frame whose payload (of `payloadBytes`) follows it. */
export function encodeFrameHeader(type: SessionFrameTypeCode, flags: number, stream: number, payloadBytes: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  writeFrameHeader(h, 0, type, flags, stream, payloadBytes)
  return h
}

export function writeFrameHeader(into: Buffer, at: number, type: SessionFrameTypeCode, flags: number, stream: number, payloadBytes: number): void {
  into[at] = (payloadBytes >>> 16) & 0xff
  into[at + 1] = (payloadBytes >>> 8) & 0xff
  into[at + 2] = payloadBytes & 0xff
  into[at + 3] = type
  into[at + 4] = flags
  into.writeUInt32BE(stream, at + 5)
}

/** A whole frame with a small payload (every type but bulk DATA), header and payload in one buffer. */
export function encodeFrame(type: SessionFrameTypeCode, flags: number, stream: number, payload?: Buffer): Buffer {
  const n = payload?.length ?? 0
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n)
  writeFrameHeader(out, 0, type, flags, stream, n)
  if (payload !== undefined && n > 0) payload.copy(out, FRAME_HEADER_BYTES)
  return out
}

export interface SessionSettings {
  /** bytes a sender may have unconsumed on one stream before the receiver grants more (CREDIT) */
  streamWindowBytes: number
  /** streams the sender of these settings takes at once */
  maxStreams: number
  /** largest DATA payload the sender of these settings accepts */
  maxDataPayloadBytes: number
}

export function encodeSettings(s: SessionSettings): Buffer {
  const p = Buffer.allocUnsafe(SETTINGS_PAYLOAD_BYTES)
  p.writeUInt32BE(s.streamWindowBytes, 0)
  p.writeUInt32BE(s.maxStreams, 4)
  p.writeUInt32BE(s.maxDataPayloadBytes, 8)
  return encodeFrame(SessionFrameType.SETTINGS, 0, 0, p)
}

/** Reads a SETTINGS payload; longer payloads are allowed (fields a later version adds are ignored). */
export function decodeSettings(payload: Buffer): SessionSettings {
  if (payload.length < SETTINGS_PAYLOAD_BYTES) throw protocolError(`SETTINGS needs ${SETTINGS_PAYLOAD_BYTES} bytes, got ${payload.length}`)
  const s = {
    streamWindowBytes: payload.readUInt32BE(0),
    maxStreams: payload.readUInt32BE(4),
    maxDataPayloadBytes: payload.readUInt32BE(8),
  }
  if (s.streamWindowBytes < 1024) throw protocolError(`SETTINGS stream window of ${s.streamWindowBytes} bytes is below the 1024 allowed`)
  if (s.maxStreams < 1) throw protocolError('SETTINGS allows no streams')
  if (s.maxDataPayloadBytes < 1024 || s.maxDataPayloadBytes > MAX_DATA_PAYLOAD_BYTES) {
    throw protocolError(`SETTINGS DATA payload limit ${s.maxDataPayloadBytes} is outside 1024–${MAX_DATA_PAYLOAD_BYTES}`)
  }
  return s
}

export function encodeCredit(stream: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4)
  writeFrameHeader(out, 0, SessionFrameType.CREDIT, 0, stream, 4)
  out.writeUInt32BE(bytes, FRAME_HEADER_BYTES)
  return out
}

export function decodeCredit(payload: Buffer): number {
  const n = payload.readUInt32BE(0)
  if (n === 0) throw protocolError('CREDIT of 0 bytes')
  return n
}

export interface Refusal {
  code: string
  message: string
}

export function encodeRefusal(stream: number, r: Refusal): Buffer {
  let body = Buffer.from(JSON.stringify({ code: r.code, message: r.message }), 'utf8')
  if (body.length > MAX_CONTROL_PAYLOAD_BYTES) {
    body = Buffer.from(JSON.stringify({ code: r.code, message: r.message.slice(0, 1000) }), 'utf8')
  }
  return encodeFrame(SessionFrameType.REFUSE, 0, stream, body)
}

export function decodeRefusal(payload: Buffer): Refusal {
  let v: unknown
  try {
    v = JSON.parse(payload.toString('utf8'))
  } catch {
    throw protocolError('REFUSE payload is not JSON')
  }
  const r = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
  if (typeof r['code'] !== 'string' || typeof r['message'] !== 'string') throw protocolError('REFUSE payload needs a string code and message')
  return { code: r['code'], message: r['message'] }
}

/** What the decoder hands on. DATA comes piece by piece: `end` is set on the last piece only. */
export interface SessionFrameSink {
  onData(stream: number, chunk: Buffer, end: boolean): void
  /** every other frame, whole, its payload a slice of the pushed bytes or a copy when it spanned pushes */
  onFrame(type: SessionFrameTypeCode, flags: number, stream: number, payload: Buffer): void
}

/**
 * Incremental frame decoder. push() calls the sink synchronously for every complete header and
 * DATA piece; it throws TUN_ERR_SESSION_PROTOCOL on a frame the rules refuse (unknown type, flags
 * or stream 0 where they do not belong, a length over its limit). After a throw, or once stop()
 * is called (from a sink callback, e.g. the session ended), push() ignores everything.
 */
export class SessionFrameDecoder {
  readonly #sink: SessionFrameSink
  readonly #maxDataPayloadBytes: number
  /** bytes of a header split across pushes */
  #header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  #headerHave = 0
  /** the frame in progress: its payload bytes still to come (−1: reading a header) */
  #left = -1
  #type: SessionFrameTypeCode = 0
  #flags = 0
  #stream = 0
  /** payload pieces of a non-DATA frame that spans pushes */
  #parts: Buffer[] = []
  #stopped = false

  constructor(sink: SessionFrameSink, options: { maxDataPayloadBytes?: number } = {}) {
    this.#sink = sink
    this.#maxDataPayloadBytes = options.maxDataPayloadBytes ?? MAX_DATA_PAYLOAD_BYTES
  }

  stop(): void {
    this.#stopped = true
  }

  /** true between frames: no header or payload bytes are held */
  get atFrameBoundary(): boolean {
    return this.#left < 0 && this.#headerHave === 0
  }

  /**
   * `transient`: the chunk's memory is reused once this returns (a socket read into one buffer):
   * what is kept past the call (pieces of a frame that spans pushes) is copied. DATA pieces are
   * handed on as they are, valid only during onData.
   */
  push(chunk: Buffer, transient = false): void {
    let at = 0
    const n = chunk.length
    while (at < n && !this.#stopped) {
      if (this.#left < 0) {
        if (this.#headerHave === 0 && n - at >= FRAME_HEADER_BYTES) {
          this.#startFrame(chunk, at)
          at += FRAME_HEADER_BYTES
        } else {
          const take = Math.min(FRAME_HEADER_BYTES - this.#headerHave, n - at)
          chunk.copy(this.#header, this.#headerHave, at, at + take)
          this.#headerHave += take
          at += take
          if (this.#headerHave < FRAME_HEADER_BYTES) return
          this.#headerHave = 0
          this.#startFrame(this.#header, 0)
        }
        if (this.#left === 0) this.#completeEmpty()
        continue
      }
      const take = Math.min(this.#left, n - at)
      const piece = chunk.subarray(at, at + take)
      at += take
      this.#left -= take
      if (this.#type === SessionFrameType.DATA) {
        const last = this.#left === 0
        if (last) this.#left = -1
        this.#sink.onData(this.#stream, piece, last && (this.#flags & FLAG_END) !== 0)
      } else if (this.#left > 0) {
        this.#parts.push(transient ? Buffer.from(piece) : piece)
      } else {
        this.#left = -1
        const payload = this.#parts.length === 0 ? piece : Buffer.concat([...this.#parts, piece])
        this.#parts = []
        this.#emit(payload)
      }
    }
  }

  #startFrame(b: Buffer, at: number): void {
    const len = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!
    const type = b[at + 3]!
    const flags = b[at + 4]!
    const stream = b.readUInt32BE(at + 5)
    const rule = RULES[type]
    if (rule === undefined) this.#refuse(`unknown frame type ${type}`)
    const name = NAMES[type]!
    if ((flags & ~rule.flags) !== 0) this.#refuse(`${name} frame with unknown flags 0x${flags.toString(16)}`)
    if (rule.session && stream !== 0) this.#refuse(`${name} frame must be on stream 0, got stream ${stream}`)
    if (!rule.session && stream === 0) this.#refuse(`${name} frame on stream 0`)
    const limit = type === SessionFrameType.DATA ? this.#maxDataPayloadBytes : MAX_CONTROL_PAYLOAD_BYTES
    if (len > limit) this.#refuse(`${name} frame of ${len} bytes is over the ${limit}-byte limit`)
    if (rule.exactBytes !== undefined && len !== rule.exactBytes) this.#refuse(`${name} frame needs ${rule.exactBytes} payload bytes, got ${len}`)
    if (rule.minBytes !== undefined && len < rule.minBytes) this.#refuse(`${name} frame needs at least ${rule.minBytes} payload bytes, got ${len}`)
    this.#type = type as SessionFrameTypeCode
    this.#flags = flags
    this.#stream = stream
    this.#left = len
  }

  #completeEmpty(): void {
    this.#left = -1
    if (this.#type === SessionFrameType.DATA) this.#sink.onData(this.#stream, EMPTY, (this.#flags & FLAG_END) !== 0)
    else this.#emit(EMPTY)
  }

  #emit(payload: Buffer): void {
    this.#sink.onFrame(this.#type, this.#flags, this.#stream, payload)
  }

  #refuse(message: string): never {
    this.#stopped = true
    throw protocolError(message)
  }
}

const EMPTY = Buffer.alloc(0)
