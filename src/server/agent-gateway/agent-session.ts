import { EventEmitter } from 'node:events'
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import { TunnelError } from '../../errors/index.ts'
import { encodeControlMessage, type ControlMessage } from '../../protocol/index.ts'
import type { Logger } from '../../observability/index.ts'

export const RELAY_PATH = '/relay'
export const CONTROL_PATH = '/control'
export const CLIENT_ADDRESS_HEADER = 'x-apptunnel-client-address'

export interface AgentSessionInfo {
  sessionId: string
  tunnelId: string
  nodeId: string
  instance: string
  remoteAddress: string
  connectedAt: string
}

export interface AgentSessionOptions {
  pingIntervalMs: number
  pingTimeoutMs: number
  /** how long close() lets in-flight relays finish before destroying */
  drainTimeoutMs: number
  log: Logger
}

/**
 * The server's end of one authenticated agent connection: an HTTP/2 *client* session on the
 * agent's upgraded TLS socket (roles reversed: the server opens streams towards the agent).
 *
 *   open ──close()──▶ draining ──last stream done / drain timer──▶ closed
 *     └──────destroy(err) / ping timeout / socket loss──────────────▲
 *
 * Rule: this side never resets a stream (see control-message.ts for why). A relay it no longer
 * wants is ended (END_STREAM), drained, and the agent is asked to abort it.
 */
export class AgentSession extends EventEmitter {
  readonly info: AgentSessionInfo
  #h2: ClientHttp2Session
  #socket: Socket
  #control: ClientHttp2Stream
  #options: AgentSessionOptions
  #log: Logger
  #activeStreams = 0
  #state: 'open' | 'draining' | 'closed' = 'open'
  #pingTimer: NodeJS.Timeout | undefined
  #drainTimer: NodeJS.Timeout | undefined
  #closeReason: TunnelError | undefined
  /** told once when the session starts draining, per open relay */
  #drainWatchers = new Map<ClientHttp2Stream, () => void>()

  constructor(h2: ClientHttp2Session, socket: Socket, control: ClientHttp2Stream, info: AgentSessionInfo, options: AgentSessionOptions) {
    super()
    this.#h2 = h2
    this.#socket = socket
    this.#control = control
    this.info = info
    this.#options = options
    this.#log = options.log.child({ sessionId: info.sessionId, tunnelId: info.tunnelId, nodeId: info.nodeId })
    h2.on('close', () => this.#finish())
    h2.on('error', (err) => {
      this.#log.info({ err }, 'agent session error')
      this.#finish()
    })
    h2.on('goaway', () => {
      // The agent is leaving gracefully: take no new streams, let the in-flight ones end.
      if (this.#state === 'open') this.#beginDrain()
    })
    control.on('error', () => this.destroy())
    control.on('close', () => this.destroy())
    control.resume()
    this.#pingTimer = setInterval(() => this.#ping(), options.pingIntervalMs)
  }

  get activeStreams(): number {
    return this.#activeStreams
  }

  /** Live and accepting new relays. */
  get isOpen(): boolean {
    return this.#state === 'open' && !this.#h2.closed && !this.#h2.destroyed
  }

  get closeReason(): TunnelError | undefined {
    return this.#closeReason
  }

  #ping(): void {
    if (this.#h2.destroyed) return
    let answered = false
    const deadline = setTimeout(() => {
      if (!answered) this.destroy(new TunnelError('TUN_ERR_SESSION_LOST', 'agent did not answer a keepalive ping in time'))
    }, this.#options.pingTimeoutMs)
    try {
      this.#h2.ping((err) => {
        answered = true
        clearTimeout(deadline)
        if (err !== null && !this.#h2.destroyed) this.#log.debug({ err }, 'ping failed')
      })
    } catch {
      clearTimeout(deadline)
    }
  }

  /**
   * Opens a relay stream carrying one client connection. Throws when the session is not open.
   * `onDraining` is called if the session starts draining while the stream is open, so the owner
   * can move to another session between requests instead of holding this one open.
   */
  openRelay(clientAddress: string, onDraining?: () => void): ClientHttp2Stream {
    if (!this.isOpen) throw new TunnelError('TUN_ERR_SESSION_LOST', 'agent session is closing')
    const stream = this.#h2.request(
      { ':method': 'POST', ':path': RELAY_PATH, [CLIENT_ADDRESS_HEADER]: clientAddress },
      { endStream: false },
    )
    this.#activeStreams++
    if (onDraining !== undefined) this.#drainWatchers.set(stream, onDraining)
    stream.once('close', () => {
      this.#activeStreams--
      this.#drainWatchers.delete(stream)
      if (this.#state === 'draining' && this.#activeStreams === 0) this.destroy()
    })
    return stream
  }

  /**
   * Stops a relay without sending RST_STREAM: end our half, keep reading so flow control never
   * stalls the session, and ask the agent to reset it from its side.
   */
  abortRelay(stream: ClientHttp2Stream): void {
    if (stream.closed || stream.destroyed) return
    stream.removeAllListeners('data')
    stream.on('data', () => {})
    stream.resume()
    if (!stream.writableEnded) stream.end()
    const send = (): void => {
      if (stream.id !== undefined && !stream.closed) this.#sendControl({ t: 'abort', id: stream.id })
    }
    if (stream.id === undefined) stream.once('ready', send)
    else send()
  }

  #sendControl(message: ControlMessage): void {
    if (this.#control.writable) this.#control.write(encodeControlMessage(message))
  }

  /** Tells the agent why it must stop (e.g. the tunnel was deleted), then ends the session at once. */
  revoke(error: TunnelError): void {
    if (this.#state === 'closed') return
    this.#closeReason = error
    this.#sendControl({ t: 'revoke', code: error.code, reason: error.message })
    // Give the control frame a moment to leave; revocation must still be quick (< 1 s).
    const t = setTimeout(() => this.destroy(error), 50)
    this.#control.once('close', () => clearTimeout(t))
    this.#h2.once('close', () => clearTimeout(t))
  }

  /** Graceful: GOAWAY, no new streams, in-flight relays finish, then the socket closes. */
  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve()
    const done = new Promise<void>((resolve) => this.once('closed', () => resolve()))
    if (this.#state === 'open') this.#beginDrain()
    return done
  }

  #beginDrain(): void {
    this.#state = 'draining'
    this.emit('draining')
    if (!this.#h2.destroyed && !this.#h2.closed) this.#h2.goaway()
    const watchers = [...this.#drainWatchers.values()]
    this.#drainWatchers.clear()
    for (const watcher of watchers) watcher()
    // The control stream counts as the session's; relays are what we wait for.
    if (this.#activeStreams === 0) {
      this.destroy()
      return
    }
    this.#drainTimer = setTimeout(() => this.destroy(), this.#options.drainTimeoutMs)
  }

  destroy(err?: TunnelError): void {
    if (err !== undefined && this.#closeReason === undefined) this.#closeReason = err
    this.#finish()
  }

  #finish(): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    clearInterval(this.#pingTimer)
    clearTimeout(this.#drainTimer)
    // Most calls come from stream and session events, which Node can deliver while nghttp2 is still
    // parsing received frames. Destroying the session there resets its open relays from inside
    // nghttp2's receive loop, and Node's http2 (20.x) then never returns from sending and fills
    // memory (node#64113; seen when a tunnel was deleted under an idle caller connection). One
    // turn later nghttp2 is done; the session is already 'closed' for everyone here.
    setImmediate(() => {
      if (!this.#h2.destroyed) this.#h2.destroy()
      if (!this.#socket.destroyed) this.#socket.destroy()
    })
    this.#log.info({ reason: this.#closeReason?.message }, 'agent session closed')
    this.emit('closed')
  }
}
