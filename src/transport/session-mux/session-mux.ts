import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import {
  FLAG_ACK,
  FLAG_END,
  FRAME_HEADER_BYTES,
  MAX_DATA_PAYLOAD_BYTES,
  MAX_STREAM_ID,
  SessionFrameDecoder,
  SessionFrameType,
  decodeControlMessage,
  decodeCredit,
  decodeRefusal,
  decodeSettings,
  encodeControlMessage,
  encodeCredit,
  encodeFrame,
  encodeRefusal,
  encodeSettings,
  frameTypeName,
  type ControlMessage,
  type Refusal,
  type SessionFrameTypeCode,
  type SessionSettings,
} from '../../protocol/index.ts'
import { FrameBatch, type TakenBatch } from './frame-batch.ts'
import { keepReceived } from './receive-slabs.ts'
import { RelayStream, type StreamTransport } from './relay-stream.ts'

export interface SessionMuxOptions {
  /** the server opens streams, the agent accepts them */
  role: 'server' | 'agent'
  /** bytes the peer may send on a stream before we grant more */
  streamWindowBytes: number
  /** streams we take at once (agent: OPENs past it are aborted; server: never opens more than the peer's) */
  maxStreams: number
  pingIntervalMs: number
  pingTimeoutMs: number
  /** why the session ends when a ping goes unanswered, as the owner wants it told (code TUN_ERR_SESSION_PING_TIMEOUT) */
  pingTimeoutMessage: string
  /**
   * Bytes queued for the socket above which streams are told to pause their sources (the session
   * is congested); they are woken when the socket drained. Default 1 MiB. Four times this much
   * queued means the peer does not read what it is sent (while it may still send, asking for
   * answers): the session is dropped.
   */
  sendBufferBytes?: number
  /**
   * Receive window the streams may grow into beyond their base windows, all together: a stream
   * moving bulk doubles its window up to MAX_WINDOW_GROWTH_FACTOR × the base while this lasts, and
   * gives its share back when it closes (decision 55). Default 16 MiB.
   */
  windowGrowthBytes?: number
  /**
   * Where the session's bytes come from, when not from the socket's `data` events: an agent reads
   * its connection into one reused buffer (`onread`) and hands each read here, valid only during
   * the call. DATA is then copied into recycled slabs (receive-slabs.ts), and the streams' owners
   * release each chunk once they have passed it on (decision 56).
   */
  input?: SessionInput
}

/** A connection's bytes, read into memory that is reused once the sink returns. */
export interface SessionInput {
  /**
   * From now on every read goes to `sink`, in order, beginning with any read before this call;
   * from the event loop, never inside this call (the session is still being constructed).
   */
  attach(sink: (chunk: Buffer) => void): void
}

/** A ping carries a counter, compared when it comes back. */
const PING_BYTES = 8
const DEFAULT_SEND_BUFFER_BYTES = 1024 * 1024
const DEFAULT_WINDOW_GROWTH_BYTES = 16 * 1024 * 1024
/** A batch up to this size is copied into one buffer (cheaper than many writes for small frames). */
const COALESCE_MAX_BYTES = 16 * 1024

/**
 * The framing layer of one agent session (session-frame.ts) on the agent's upgraded TLS socket,
 * shared by both ends: settings, streams and their flow control, ping, goaway, control messages.
 *
 * Writes are batched: frames queued in one turn of the event loop leave in one socket write at the
 * next setImmediate, so a busy session sends many streams' bytes per TLS record and system call.
 * DATA payloads are copied into the batch as they are sent (frame-batch.ts): a writer may reuse
 * its buffer once sendData returns.
 *
 *   setup ──peer SETTINGS──▶ open ──goaway() or peer GOAWAY──▶ draining ──end()/destroy()──▶ closed
 *     └──────────────────────────destroy(err) / socket loss / ping timeout────────────────────▲
 *
 * Events: 'settings' (peer SessionSettings) once, 'stream' (RelayStream, clientAddress; agent role),
 * 'control' (ControlMessage), 'goaway' (the peer is leaving), 'close' (TunnelError | undefined) once.
 */
export class SessionMux extends EventEmitter implements StreamTransport {
  readonly #socket: Socket
  readonly #options: SessionMuxOptions
  readonly #decoder: SessionFrameDecoder
  readonly #streams = new Map<number, RelayStream>()
  readonly #sendBufferBytes: number
  /** what the streams' receive windows may still grow by, together */
  #windowGrowthLeft: number
  #peer: SessionSettings | undefined
  /** server: the next id to open; agent: the last id the server opened */
  #lastStreamId = 0
  readonly #out = new FrameBatch()
  #flushScheduled = false
  /** a write of ours has not called back yet: the socket is handed one write at a time */
  #writing = false
  /** a flush came while #writing: it runs when the write calls back */
  #flushWhenWritten = false
  /** batches that filled their slab while #writing, written in order, one per write */
  #held: TakenBatch[] = []
  #heldBytes = 0
  #blocked = new Set<RelayStream>()
  #goawaySent = false
  #goawayReceived = false
  #closed = false
  #closeReason: TunnelError | undefined
  #pingTimer: NodeJS.Timeout | undefined
  #pingDeadline: NodeJS.Timeout | undefined
  #pingCounter = 0n
  #pingOutstanding: bigint | undefined
  /** the PING answer waiting in #out, if any: a peer is owed one answer at a time */
  #queuedAck: Buffer | undefined
  #ending = false
  /** reads come from options.input: DATA must be copied before it is handed to a stream */
  readonly #transientInput: boolean

  constructor(socket: Socket, options: SessionMuxOptions) {
    super()
    this.#socket = socket
    this.#options = options
    this.#sendBufferBytes = options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES
    this.#windowGrowthLeft = options.windowGrowthBytes ?? DEFAULT_WINDOW_GROWTH_BYTES
    this.#decoder = new SessionFrameDecoder({
      onData: (id, chunk, end) => this.#onData(id, chunk, end),
      onFrame: (type, flags, id, payload) => this.#onFrame(type, flags, id, payload),
    })
    this.#queue(encodeSettings({ streamWindowBytes: options.streamWindowBytes, maxStreams: options.maxStreams, maxDataPayloadBytes: MAX_DATA_PAYLOAD_BYTES }))
    this.#transientInput = options.input !== undefined
    if (options.input !== undefined) {
      options.input.attach((chunk) => this.#onSocketData(chunk))
    } else {
      socket.on('data', (chunk: Buffer) => this.#onSocketData(chunk))
    }
    socket.on('drain', () => this.#onDrain())
    socket.on('end', () => this.destroy(this.#goawayReceived || this.#goawaySent ? undefined : new TunnelError('TUN_ERR_SESSION_LOST', 'the peer closed the session')))
    socket.on('error', (err: Error) => this.destroy(new TunnelError('TUN_ERR_SESSION_LOST', `session connection failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`)))
    socket.on('close', () => this.destroy(new TunnelError('TUN_ERR_SESSION_LOST', 'the session connection closed')))
  }

  get closed(): boolean {
    return this.#closed
  }

  get closeReason(): TunnelError | undefined {
    return this.#closeReason
  }

  /** open streams (relays) */
  get streamCount(): number {
    return this.#streams.size
  }

  /** end() was called: the connection is closing gracefully */
  get ending(): boolean {
    return this.#ending
  }

  /** the open streams */
  streams(): IterableIterator<RelayStream> {
    return this.#streams.values()
  }

  /** server role: can open a stream now (settings known, nobody is leaving, below the peer's limit) */
  get canOpen(): boolean {
    return (
      !this.#closed &&
      this.#peer !== undefined &&
      !this.#goawaySent &&
      !this.#goawayReceived &&
      this.#lastStreamId < MAX_STREAM_ID &&
      this.#streams.size < this.#peer.maxStreams
    )
  }

  /** server role: open and usable, but carrying as many streams as the peer accepts */
  get atStreamLimit(): boolean {
    return !this.#closed && this.#peer !== undefined && this.#streams.size >= this.#peer.maxStreams
  }

  /** bytes queued here and in the socket, not yet handed to the kernel */
  get queuedBytes(): number {
    return this.#out.bytes + this.#heldBytes + this.#socket.writableLength
  }

  get congested(): boolean {
    return this.queuedBytes >= this.#sendBufferBytes
  }

  get maxDataPayloadBytes(): number {
    return this.#peer?.maxDataPayloadBytes ?? MAX_DATA_PAYLOAD_BYTES
  }

  /** Starts the keepalive pings; called by the owner once the session is set up. */
  startPings(): void {
    if (this.#closed || this.#pingTimer !== undefined) return
    this.#pingTimer = setInterval(() => this.#ping(), this.#options.pingIntervalMs)
  }

  /** server role: a stream for one client connection. Throws when the session cannot take one. */
  open(clientAddress: string): RelayStream {
    if (this.#options.role !== 'server') throw new Error('only the server opens streams')
    if (!this.canOpen) throw new TunnelError('TUN_ERR_SESSION_LOST', 'agent session is closing')
    const id = ++this.#lastStreamId
    const stream = new RelayStream(id, this, { sendWindowBytes: this.#peer!.streamWindowBytes, recvWindowBytes: this.#options.streamWindowBytes })
    this.#streams.set(id, stream)
    const address = Buffer.from(clientAddress.slice(0, 200), 'utf8')
    this.#queue(encodeFrame(SessionFrameType.OPEN, 0, id, address))
    return stream
  }

  sendControl(message: ControlMessage): void {
    if (this.#closed) return
    this.#queue(encodeFrame(SessionFrameType.CONTROL, 0, 0, encodeControlMessage(message)))
  }

  /** Tells the peer this side is leaving: no new streams either way; open ones finish. */
  goaway(): void {
    if (this.#closed || this.#goawaySent) return
    this.#goawaySent = true
    this.#queue(encodeFrame(SessionFrameType.GOAWAY, 0, 0))
  }

  /** Ends gracefully: what is queued is sent, then the connection is closed (streams still open are lost). */
  end(): void {
    if (this.#closed || this.#ending) return
    // Everything queued goes to the socket now, in order, whatever is still being written.
    for (const batch of this.#held.splice(0)) this.#write(batch)
    this.#heldBytes = 0
    if (!this.#out.empty) this.#write(this.#take())
    // Nothing is queued after the last flush: a write behind end() would fail the socket.
    this.#ending = true
    clearInterval(this.#pingTimer)
    clearTimeout(this.#pingDeadline)
    this.#socket.end()
    // A peer that never closes its side must not hold the socket: the 'close' finishes us.
    const t = setTimeout(() => this.destroy(), 2000)
    this.#socket.once('close', () => clearTimeout(t))
  }

  /** Ends now: the socket is destroyed and every open stream is lost with `reason`. */
  destroy(reason?: TunnelError): void {
    if (this.#closed) return
    this.#closed = true
    this.#closeReason = reason
    this.#decoder.stop()
    clearInterval(this.#pingTimer)
    clearTimeout(this.#pingDeadline)
    this.#out.clear()
    // Held batches are never written; their slabs are left to the collector.
    this.#held = []
    this.#heldBytes = 0
    this.#blocked.clear()
    if (!this.#socket.destroyed) this.#socket.destroy()
    const lost = reason ?? new TunnelError('TUN_ERR_SESSION_LOST', 'the agent session ended')
    for (const stream of [...this.#streams.values()]) stream.receiveLoss(lost)
    this.#streams.clear()
    this.emit('close', reason)
  }

  // ── writing ───────────────────────────────────────────────────────────────────────────────────

  /** `first`: ahead of what is queued (pings measure liveness, not our backlog). */
  #queue(frame: Buffer, first = false): void {
    if (this.#ending) return
    if (first) this.#out.unshift(frame)
    else this.#out.push(frame)
    this.#checkBacklog()
    this.#scheduleFlush()
  }

  /**
   * Writers pause while the session is congested, each after at most one frame more, so only a
   * peer that stops reading (and keeps asking for answers) gets past this.
   */
  #checkBacklog(): void {
    if (this.queuedBytes > 4 * this.#sendBufferBytes + this.#streams.size * MAX_DATA_PAYLOAD_BYTES) {
      this.destroy(new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'the peer does not read what the session sends'))
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      this.#flush()
    })
  }

  #flush(): void {
    if (this.#closed || this.#out.empty) return
    if (this.#writing || this.#held.length > 0) {
      // What comes meanwhile gathers behind it and leaves as one write when it calls back (held
      // batches go first; they are left only by a failed write, whose socket is being destroyed).
      this.#flushWhenWritten = true
      return
    }
    this.#write(this.#take())
    if (this.#blocked.size > 0 && !this.congested) this.#wakeBlocked()
  }

  /**
   * Hands one batch to the socket. Only one write is given to the socket at a time (end() aside):
   * writes that pile up in a busy socket are joined into one fresh buffer by TLS before it
   * encrypts, a copy of every byte, where a batch gathered here meanwhile is one part of a slab.
   */
  #write(batch: TakenBatch): void {
    const { parts, bytes } = batch
    this.#writing = true
    // The slabs of a batch are reused only once the socket is done with them.
    const written = (err?: Error | null): void => {
      batch.written(err != null)
      this.#written(err != null)
    }
    if (parts.length === 1) this.#socket.write(parts[0]!, written)
    else if (bytes <= COALESCE_MAX_BYTES) this.#socket.write(Buffer.concat(parts, bytes), written)
    else {
      // A batch behind a frame of its own (a ping, a head): one writev (TLS joins the parts natively).
      // Writes complete in order, so the last one's callback covers them all.
      this.#socket.cork()
      for (let i = 0; i < parts.length - 1; i++) this.#socket.write(parts[i]!)
      this.#socket.write(parts[parts.length - 1]!, written)
      this.#socket.uncork()
    }
  }

  /** Everything queued, out of #out: a PING answer in it is no longer there to be updated. */
  #take(): TakenBatch {
    this.#queuedAck = undefined
    return this.#out.take()
  }

  #written(failed: boolean): void {
    this.#writing = false
    if (failed || this.#closed || this.#ending) return
    const next = this.#held.shift()
    if (next !== undefined) {
      this.#heldBytes -= next.bytes
      this.#write(next)
      if (this.#blocked.size > 0 && !this.congested) this.#wakeBlocked()
    } else if (this.#flushWhenWritten) {
      this.#flushWhenWritten = false
      this.#flush()
    }
  }

  #onDrain(): void {
    if (this.#blocked.size > 0 && !this.congested) this.#wakeBlocked()
  }

  #wakeBlocked(): void {
    const streams = [...this.#blocked]
    this.#blocked.clear()
    for (const s of streams) {
      if (this.#closed || this.congested) {
        if (!s.closed) this.#blocked.add(s)
        continue
      }
      s.wake()
    }
  }

  sendData(id: number, chunk: Buffer, end: boolean): void {
    if (this.#closed || this.#ending) return
    // A batch that filled its slab leaves now (or next, behind the write in progress) as one part,
    // rather than go on in a second slab.
    if (this.#out.full(chunk.length)) {
      const batch = this.#take()
      if (!this.#writing) this.#write(batch)
      else {
        this.#held.push(batch)
        this.#heldBytes += batch.bytes
      }
    }
    this.#out.pushData(id, end ? FLAG_END : 0, chunk)
    this.#checkBacklog()
    this.#scheduleFlush()
  }

  sendCredit(id: number, bytes: number): void {
    if (!this.#closed) this.#queue(encodeCredit(id, bytes))
  }

  sendAccept(id: number): void {
    if (!this.#closed) this.#queue(encodeFrame(SessionFrameType.ACCEPT, 0, id))
  }

  sendRefusal(id: number, refusal: Refusal): void {
    if (!this.#closed) this.#queue(encodeRefusal(id, refusal))
  }

  sendAbort(id: number): void {
    if (!this.#closed) this.#queue(encodeFrame(SessionFrameType.ABORT, 0, id))
  }

  waitUncongested(stream: RelayStream): void {
    this.#blocked.add(stream)
  }

  takeWindowGrowth(want: number): number {
    const n = Math.min(want, this.#windowGrowthLeft)
    this.#windowGrowthLeft -= n
    return n
  }

  returnWindowGrowth(bytes: number): void {
    this.#windowGrowthLeft += bytes
  }

  forget(stream: RelayStream): void {
    this.#streams.delete(stream.id)
    this.#blocked.delete(stream)
    if (this.#streams.size === 0) this.emit('idle')
  }

  // ── reading ───────────────────────────────────────────────────────────────────────────────────

  #onSocketData(chunk: Buffer): void {
    // Anything from the peer shows it is alive: a busy session's PING answer may wait behind
    // what the peer itself is sending, or behind our own queued bytes.
    if (this.#pingOutstanding !== undefined) this.#pingDeadline?.refresh()
    try {
      this.#decoder.push(chunk, this.#transientInput)
    } catch (err) {
      this.destroy(isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', 'session frame handling failed', { cause: err }))
    }
  }

  #onData(id: number, chunk: Buffer, end: boolean): void {
    if (this.#peer === undefined) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'DATA before SETTINGS')
    const stream = this.#streams.get(id)
    if (stream === undefined) {
      this.#checkStale(id, SessionFrameType.DATA)
      return
    }
    stream.receiveData(this.#transientInput && chunk.length > 0 ? keepReceived(chunk) : chunk, end)
  }

  /** A frame for a stream we do not hold: fine if the stream existed (it ended while the frame was on its way). */
  #checkStale(id: number, type: SessionFrameTypeCode): void {
    if (id > this.#lastStreamId) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `${frameTypeName(type)} for stream ${id}, which was never opened`)
  }

  #onFrame(type: SessionFrameTypeCode, flags: number, id: number, payload: Buffer): void {
    if (this.#peer === undefined && type !== SessionFrameType.SETTINGS) {
      throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `${frameTypeName(type)} before SETTINGS`)
    }
    const server = this.#options.role === 'server'
    switch (type) {
      case SessionFrameType.SETTINGS:
        if (this.#peer !== undefined) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'SETTINGS sent twice')
        this.#peer = decodeSettings(payload)
        this.emit('settings', this.#peer)
        return
      case SessionFrameType.OPEN:
        if (server) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'the agent may not open streams')
        this.#onOpen(id, payload)
        return
      case SessionFrameType.ACCEPT:
      case SessionFrameType.REFUSE: {
        if (!server) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `the server may not send ${frameTypeName(type)}`)
        const stream = this.#streams.get(id)
        if (stream === undefined) return this.#checkStale(id, type)
        if (stream.accepted) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `${frameTypeName(type)} on stream ${id}, which was accepted already`)
        if (type === SessionFrameType.ACCEPT) stream.receiveAccept()
        else stream.receiveRefusal(decodeRefusal(payload))
        return
      }
      case SessionFrameType.ABORT: {
        const stream = this.#streams.get(id)
        if (stream === undefined) return this.#checkStale(id, type)
        stream.receiveLoss(new TunnelError('TUN_ERR_SESSION_LOST', server ? 'the agent aborted the relay' : 'the server aborted the relay'))
        return
      }
      case SessionFrameType.CREDIT: {
        const bytes = decodeCredit(payload)
        const stream = this.#streams.get(id)
        if (stream === undefined) return this.#checkStale(id, type)
        stream.receiveCredit(bytes)
        return
      }
      case SessionFrameType.PING:
        this.#onPing(flags, payload)
        return
      case SessionFrameType.GOAWAY:
        if (this.#goawayReceived) return
        this.#goawayReceived = true
        this.emit('goaway')
        return
      case SessionFrameType.CONTROL:
        if (!server) {
          this.emit('control', decodeControlMessage(payload))
          return
        }
        throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'the agent may not send control messages')
      case SessionFrameType.DATA:
        return // delivered through onData
    }
  }

  #onOpen(id: number, payload: Buffer): void {
    if (id <= this.#lastStreamId) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `OPEN of stream ${id} after stream ${this.#lastStreamId}: ids must grow`)
    this.#lastStreamId = id
    if (this.#goawaySent || this.#streams.size >= this.#options.maxStreams || this.#ending) {
      // Never reached the upstream: the server may send it to another session.
      this.sendAbort(id)
      return
    }
    const stream = new RelayStream(id, this, { sendWindowBytes: this.#peer!.streamWindowBytes, recvWindowBytes: this.#options.streamWindowBytes })
    this.#streams.set(id, stream)
    this.emit('stream', stream, payload.toString('utf8'))
    if (this.listenerCount('stream') === 0) stream.abort()
  }

  #ping(): void {
    if (this.#closed || this.#ending || this.#pingOutstanding !== undefined) return
    const value = ++this.#pingCounter
    this.#pingOutstanding = value
    const p = Buffer.allocUnsafe(PING_BYTES)
    p.writeBigUInt64BE(value)
    this.#queue(encodeFrame(SessionFrameType.PING, 0, 0, p), true)
    this.#pingDeadline = setTimeout(() => this.destroy(new TunnelError('TUN_ERR_SESSION_PING_TIMEOUT', this.#options.pingTimeoutMessage)), this.#options.pingTimeoutMs)
  }

  #onPing(flags: number, payload: Buffer): void {
    if ((flags & FLAG_ACK) === 0) {
      // One answer owed at a time: a flood of PINGs replaces the answer still waiting.
      if (this.#queuedAck !== undefined) {
        payload.copy(this.#queuedAck, FRAME_HEADER_BYTES)
        return
      }
      const ack = encodeFrame(SessionFrameType.PING, FLAG_ACK, 0, payload)
      this.#queuedAck = ack
      this.#queue(ack, true)
      return
    }
    if (this.#pingOutstanding !== undefined && payload.readBigUInt64BE() === this.#pingOutstanding) {
      this.#pingOutstanding = undefined
      clearTimeout(this.#pingDeadline)
    }
  }
}
