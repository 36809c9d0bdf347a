import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { LinkKeys } from '../auth/auth-transcript.ts'
import { FrameDecoder, type FrameFormat } from '../wire/frame-decoder.ts'
import { FrameOpener, FrameSealer, sealedFormat } from '../wire/frame-seal.ts'
import { FRAME_PING, FRAME_PONG, decodeBusMessage, type BusEvent } from './bus-messages.ts'

export interface PeerLinkInfo {
  peerId: string
  /** outbound: this node dialled; inbound: the peer did */
  direction: 'inbound' | 'outbound'
  /** hex id of the key the link authenticated with; null when authentication was skipped */
  kid: string | null
  remoteAddress: string
  /** ISO time the link authenticated */
  since: string
}

export interface PeerLinkOptions {
  /** unsealed limits: the MAC of every frame comes on top */
  format: FrameFormat
  /** the link's MAC keys from its handshake */
  keys: LinkKeys
  /** a PING goes out when this long passed without one, in ms */
  pingIntervalMs: number
  /** a peer silent for this long is dropped, in ms */
  pingTimeoutMs: number
  /** close() waits this long for the peer to close its side before destroying, in ms [1000] */
  closeTimeoutMs?: number
}

/**
 * One authenticated connection to a peer, after the handshake handed it over. Seals every frame it
 * writes and checks every frame it reads (wire/frame-seal.ts): the first frame that fails closes
 * the link with TUN_ERR_CLUSTER_BUS_INTEGRITY before anything of it is acted on. Decodes bus frames,
 * answers PINGs, drops a peer that sent no whole frame for pingTimeoutMs, and reports events and
 * acknowledgements to the bus.
 *
 * Events: 'event' (BusEvent), 'ack' (seq), 'drain' (the socket can take more), and 'close'
 * (TunnelError | undefined) exactly once.
 */
export class PeerLink extends EventEmitter {
  readonly info: PeerLinkInfo
  /** highest sequence number this link has written (the bus's resend cursor) */
  sentSeq = 0
  readonly #socket: Socket
  readonly #options: PeerLinkOptions
  readonly #decoder: FrameDecoder
  readonly #sealer: FrameSealer
  readonly #opener: FrameOpener
  readonly #keepalive: NodeJS.Timeout
  #lastHeardAt = Date.now()
  #closed = false
  #closeTimer: NodeJS.Timeout | undefined
  #closedPromise: Promise<void>

  constructor(socket: Socket, info: PeerLinkInfo, leftover: Buffer, options: PeerLinkOptions) {
    super()
    this.info = info
    this.#socket = socket
    this.#options = options
    this.#decoder = new FrameDecoder(sealedFormat(options.format))
    this.#sealer = new FrameSealer(options.format, options.keys.send)
    this.#opener = new FrameOpener(options.keys.receive)
    this.#closedPromise = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('data', this.#onData)
    socket.on('drain', this.#onDrain)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    socket.on('end', this.#onEnd)
    const tick = Math.max(10, Math.min(options.pingIntervalMs, options.pingTimeoutMs / 2))
    this.#keepalive = setInterval(this.#onKeepalive, tick)
    // Deliver what came with the handshake's last frame first, then take the socket off pause.
    queueMicrotask(() => {
      if (leftover.length > 0) this.#onData(leftover)
      if (!this.#closed) socket.resume()
    })
  }

  get isOpen(): boolean {
    return !this.#closed
  }

  /** True while the socket takes writes without queueing in memory. */
  get writable(): boolean {
    return !this.#closed && !this.#socket.writableNeedDrain
  }

  /** Seals and writes one frame; false means wait for 'drain'. */
  send(type: number, payload?: Buffer): boolean {
    if (this.#closed) return false
    // Sealed at the moment of writing: the implicit sequence number is the order on the wire.
    return this.#socket.write(this.#sealer.seal(type, payload))
  }

  /** Ends the link gracefully: the peer sees a clean close; destroyed if it does not close back in time. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#socket.end()
      this.#closeTimer = setTimeout(() => this.#socket.destroy(), this.#options.closeTimeoutMs ?? 1000)
      this.#shutdown(undefined)
    }
    return this.#closedPromise
  }

  destroy(err?: TunnelError): void {
    if (!this.#closed) this.#shutdown(err)
    this.#socket.destroy()
  }

  #shutdown(err: TunnelError | undefined): void {
    this.#closed = true
    clearInterval(this.#keepalive)
    this.#socket.off('data', this.#onData)
    this.#socket.off('drain', this.#onDrain)
    this.emit('close', err)
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#closed) return
    try {
      this.#decoder.push(chunk)
      for (;;) {
        if (this.#closed) return
        const frame = this.#decoder.next()
        if (frame === undefined) return
        const opened = this.#opener.open(frame)
        // Only whole, genuine frames count as hearing from the peer: bytes of a frame dripped slower
        // than the ping timeout would otherwise hold the link (and its buffer) open for ever.
        this.#lastHeardAt = Date.now()
        const m = decodeBusMessage(opened)
        if (m.type === 'ping') this.send(FRAME_PONG)
        else if (m.type === 'event') this.emit('event', m.event satisfies BusEvent)
        else if (m.type === 'ack') this.emit('ack', m.seq)
      }
    } catch (err) {
      this.destroy(isTunnelError(err) ? err : new TunnelError('TUN_ERR_CLUSTER_BUS_PROTOCOL', String(err), { cause: err }))
    }
  }

  readonly #onKeepalive = (): void => {
    const silentMs = Date.now() - this.#lastHeardAt
    if (silentMs > this.#options.pingTimeoutMs) {
      this.destroy(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `node ${this.info.peerId} was silent for ${silentMs} ms`))
    } else if (silentMs >= this.#options.pingIntervalMs) {
      this.send(FRAME_PING)
    }
  }

  readonly #onDrain = (): void => {
    this.emit('drain')
  }

  readonly #onEnd = (): void => {
    if (!this.#closed) this.#shutdown(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `node ${this.info.peerId} closed the link`))
  }

  readonly #onError = (err: Error): void => {
    if (!this.#closed) this.#shutdown(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `link to node ${this.info.peerId} failed: ${err.message}`, { cause: err }))
  }

  readonly #onClose = (): void => {
    clearTimeout(this.#closeTimer)
    clearInterval(this.#keepalive)
    if (!this.#closed) this.#shutdown(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `link to node ${this.info.peerId} closed`))
  }
}
