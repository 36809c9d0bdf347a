import { TunnelError } from '../../errors/index.ts'
import type { Refusal } from '../../protocol/index.ts'
import { releaseReceived } from './receive-slabs.ts'

/**
 * What a stream's owner hears. One object per stream, set once: the hot path calls these directly
 * (no EventEmitter), so each is called with the stream as `this`-free arguments only.
 */
export interface RelayStreamHandlers {
  /** server side: the agent opened the upstream connection (nothing was relayed before) */
  accepted?(): void
  /** server side: the agent could not reach the upstream; the stream is over */
  refused?(refusal: Refusal): void
  /**
   * bytes from the peer, in order; call hold() when they cannot be passed on as fast. On a session
   * with an `input` (the agent's), pass the chunk to releaseReceived() once it is passed on or dropped.
   */
  data(chunk: Buffer): void
  /** the peer sent its last bytes (a clean half-close) */
  end(): void
  /**
   * The stream ended abnormally and is gone: the peer aborted it, or the session ended before both
   * directions finished. Not called after the owner's own abort().
   */
  lost(reason: TunnelError): void
  /** write() returned false earlier and the stream takes bytes again */
  writable(): void
  /** server side: the session started draining while this stream is open (move between requests) */
  draining?(): void
}

/** What a stream needs of its session (SessionMux implements it). */
export interface StreamTransport {
  readonly congested: boolean
  readonly maxDataPayloadBytes: number
  /** queues a DATA frame; `chunk` is copied before this returns */
  sendData(id: number, chunk: Buffer, end: boolean): void
  sendCredit(id: number, bytes: number): void
  sendAccept(id: number): void
  sendRefusal(id: number, refusal: Refusal): void
  sendAbort(id: number): void
  /** call stream.wake() once the session is no longer congested */
  waitUncongested(stream: RelayStream): void
  /** takes up to `want` bytes of the receive window the session's streams may grow into; returns what it got */
  takeWindowGrowth(want: number): number
  /** gives back a closed stream's growth */
  returnWindowGrowth(bytes: number): void
  forget(stream: RelayStream): void
}

/** A bulk stream's receive window grows to at most this many times the base window. */
export const MAX_WINDOW_GROWTH_FACTOR = 4

/**
 * One relayed client connection inside an agent session, with credit-based flow control in each
 * direction: a sender has at most the receiver's window of bytes unconsumed; the receiver grants
 * more (CREDIT) as its owner passes bytes on and is not holding. A stream that has taken a whole
 * window since its window last grew is moving bulk: its next grant also doubles its window, up to
 * MAX_WINDOW_GROWTH_FACTOR × the base, out of a budget its session shares among its streams
 * (decision 55). Memory a session can be made to hold is so bounded by streams × base window +
 * that budget on each side.
 *
 *   open ──end() and peer end──▶ closed
 *     ├──abort() / peer ABORT / REFUSE──▶ closed
 *     └──session ends──▶ closed (lost)
 */
export class RelayStream {
  readonly id: number
  readonly #transport: StreamTransport
  #handlers: RelayStreamHandlers | undefined
  /** bytes we may still send before the peer grants more */
  #sendCredit: number
  /** bytes the peer may still send before we grant more (a peer going past it breaks the protocol) */
  #recvAllowance: number
  /** bytes received and passed on, not yet granted back */
  #recvUngranted = 0
  readonly #grantThreshold: number
  /** the window we announced; what the window grew beyond it came from the session's budget */
  readonly #baseRecvWindow: number
  /** the receive window now: the base, or more once the stream has shown it moves bulk */
  #recvWindow: number
  /** bytes received since the window last grew (or was refused growth) */
  #recvSinceGrowth = 0
  #held = false
  /** bytes written beyond our credit, sent as credit comes */
  #pending: Buffer[] = []
  #endPending = false
  #localEnded = false
  #remoteEnded = false
  #closed = false
  /** write() said false: the owner waits for writable() */
  #owesWritable = false
  #accepted = false

  constructor(id: number, transport: StreamTransport, windows: { sendWindowBytes: number; recvWindowBytes: number }) {
    this.id = id
    this.#transport = transport
    this.#sendCredit = windows.sendWindowBytes
    this.#recvAllowance = windows.recvWindowBytes
    this.#baseRecvWindow = windows.recvWindowBytes
    this.#recvWindow = windows.recvWindowBytes
    // Grant in quarters of the window: one CREDIT frame per many small reads, and the sender
    // never runs dry while the grant travels.
    this.#grantThreshold = Math.max(1, Math.floor(windows.recvWindowBytes / 4))
  }

  /** Set by the owner before any bytes can arrive (at open, or when the agent is told of the stream). */
  attach(handlers: RelayStreamHandlers): void {
    this.#handlers = handlers
  }

  get closed(): boolean {
    return this.#closed
  }

  /** our side sent (or queued) its last bytes */
  get writableEnded(): boolean {
    return this.#localEnded || this.#endPending
  }

  /** bytes are waiting for credit or the session is congested: the owner should pause its source */
  get writableNeedDrain(): boolean {
    return this.#pending.length > 0 || this.#sendCredit === 0 || this.#transport.congested
  }

  get accepted(): boolean {
    return this.#accepted
  }

  /** bytes the peer may have in flight on this stream: the base window, or more once grown */
  get recvWindowBytes(): number {
    return this.#recvWindow
  }

  /**
   * Sends bytes; false means pause the source until writable(). What the credit allows leaves at
   * once, congested or not (a source that pauses on false adds at most one chunk to a congested
   * session, and the socket stays fed); bytes past the credit are kept here and sent as it comes.
   */
  write(chunk: Buffer): boolean {
    return this.#write(chunk, false)
  }

  /**
   * write() for a chunk whose memory is reused once this returns (a socket's `onread` buffer):
   * what the credit lets leave is copied into the session's batch, what must wait is copied here.
   */
  writeTransient(chunk: Buffer): boolean {
    return this.#write(chunk, true)
  }

  #write(chunk: Buffer, transient: boolean): boolean {
    if (this.#closed || this.#localEnded || this.#endPending) return false
    if (chunk.length > 0) {
      this.#pending.push(chunk)
      this.#pump()
      // #pump() takes from the front: whatever is left at the back is (a view of) this chunk.
      const last = this.#pending.length - 1
      if (transient && last >= 0) this.#pending[last] = Buffer.from(this.#pending[last]!)
    }
    if (this.writableNeedDrain) {
      this.#owesWritable = true
      if (this.#transport.congested) this.#transport.waitUncongested(this)
      return false
    }
    return true
  }

  /** Sends what is kept, while there is credit; then a pending end. */
  #pump(): void {
    const max = this.#transport.maxDataPayloadBytes
    while (this.#pending.length > 0 && this.#sendCredit > 0 && !this.#closed) {
      const chunk = this.#pending[0]!
      const take = Math.min(this.#sendCredit, max, chunk.length)
      this.#transport.sendData(this.id, take === chunk.length ? chunk : chunk.subarray(0, take), false)
      this.#sendCredit -= take
      if (take === chunk.length) this.#pending.shift()
      else this.#pending[0] = chunk.subarray(take)
    }
    if (this.#pending.length === 0 && this.#endPending && !this.#closed) this.#sendEnd()
  }

  /** Our last bytes: the peer sees a clean half-close once everything before it was sent. */
  end(): void {
    if (this.#closed || this.#localEnded || this.#endPending) return
    if (this.#pending.length > 0) {
      this.#endPending = true
      return
    }
    this.#sendEnd()
  }

  #sendEnd(): void {
    this.#endPending = false
    this.#localEnded = true
    this.#transport.sendData(this.id, EMPTY, true)
    if (this.#remoteEnded) this.#close()
  }

  /** Ends the stream now, both directions; the owner hears nothing more. */
  abort(): void {
    if (this.#closed) return
    this.#transport.sendAbort(this.id)
    this.#handlers = undefined
    this.#close()
  }

  /** agent side: the upstream connection is open */
  accept(): void {
    if (this.#closed || this.#accepted) return
    this.#accepted = true
    this.#transport.sendAccept(this.id)
  }

  /** agent side: the upstream could not be reached; the stream is over */
  refuse(refusal: Refusal): void {
    if (this.#closed) return
    this.#transport.sendRefusal(this.id, refusal)
    this.#handlers = undefined
    this.#close()
  }

  /** The owner cannot pass bytes on for now (its socket is full): stop granting credit. */
  hold(): void {
    this.#held = true
  }

  /** The owner passes bytes on again: grant what was withheld. */
  release(): void {
    if (!this.#held) return
    this.#held = false
    if (this.#recvUngranted >= this.#grantThreshold) this.#grant()
  }

  #grant(): void {
    if (this.#closed || this.#remoteEnded) return
    const n = this.#recvUngranted + this.#growth()
    this.#recvUngranted = 0
    this.#recvAllowance += n
    this.#transport.sendCredit(this.id, n)
  }

  /**
   * Extra credit for a stream that took a whole window since it last grew: its window doubles
   * while the session's budget lasts. Between two relays that share the cores with the caller and
   * the app, one window in flight runs dry whenever the receiver is descheduled; a bulk stream
   * needs a few (docs/performance.md). A stream of small exchanges never takes a whole window and
   * keeps the base.
   */
  #growth(): number {
    const max = this.#baseRecvWindow * MAX_WINDOW_GROWTH_FACTOR
    if (this.#recvSinceGrowth < this.#recvWindow || this.#recvWindow >= max) return 0
    this.#recvSinceGrowth = 0
    const extra = this.#transport.takeWindowGrowth(Math.min(this.#recvWindow, max - this.#recvWindow))
    this.#recvWindow += extra
    return extra
  }

  // ── called by the session ─────────────────────────────────────────────────────────────────────

  /** DATA from the peer. Throws TUN_ERR_SESSION_PROTOCOL when the peer broke flow control or sent after its end. */
  receiveData(chunk: Buffer, end: boolean): void {
    if (this.#remoteEnded) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `DATA on stream ${this.id} after its end`)
    const n = chunk.length
    if (n > this.#recvAllowance) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `DATA on stream ${this.id} beyond the granted window`)
    this.#recvAllowance -= n
    if (n > 0) {
      const h = this.#handlers
      // Nobody takes it (the owner aborted): a chunk kept in a receive slab is free again.
      if (h === undefined) releaseReceived(chunk)
      else h.data(chunk)
      if (this.#closed) return
      this.#recvUngranted += n
      this.#recvSinceGrowth += n
      if (!this.#held && !end && this.#recvUngranted >= this.#grantThreshold) this.#grant()
    }
    if (end) {
      this.#remoteEnded = true
      this.#handlers?.end()
      if (this.#localEnded && !this.#closed) this.#close()
    }
  }

  receiveCredit(bytes: number): void {
    if (this.#closed) return
    this.#sendCredit += bytes
    if (this.#sendCredit > 0x7fff_ffff) throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', `CREDIT on stream ${this.id} overflows the window`)
    this.wake()
  }

  /**
   * Sends what is kept if it can, then tells the owner it may write again, if it was waiting and
   * nothing holds the stream back. Called on credit and when the session stops being congested.
   */
  wake(): void {
    if (this.#closed) return
    this.#pump()
    // Still short of credit: the next CREDIT wakes us.
    if (this.#closed || !this.#owesWritable || this.#pending.length > 0 || this.#sendCredit === 0) return
    if (this.#transport.congested) {
      this.#transport.waitUncongested(this)
      return
    }
    this.#owesWritable = false
    this.#handlers?.writable()
  }

  notifyDraining(): void {
    if (!this.#closed) this.#handlers?.draining?.()
  }

  receiveAccept(): void {
    if (this.#closed) return
    this.#accepted = true
    this.#handlers?.accepted?.()
  }

  receiveRefusal(refusal: Refusal): void {
    if (this.#closed) return
    const h = this.#handlers
    this.#close()
    h?.refused?.(refusal)
  }

  /** The peer aborted the stream, or the session is gone. */
  receiveLoss(reason: TunnelError): void {
    if (this.#closed) return
    const h = this.#handlers
    this.#close()
    h?.lost(reason)
  }

  #close(): void {
    this.#closed = true
    this.#pending = []
    if (this.#recvWindow > this.#baseRecvWindow) this.#transport.returnWindowGrowth(this.#recvWindow - this.#baseRecvWindow)
    this.#recvWindow = this.#baseRecvWindow
    this.#transport.forget(this)
  }
}

const EMPTY = Buffer.alloc(0)
