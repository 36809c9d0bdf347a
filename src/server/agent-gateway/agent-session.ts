import { EventEmitter } from 'node:events'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import type { ReplicaEndpoint } from '../../protocol/index.ts'
import type { RelayStream, RelayStreamHandlers, SessionMux } from '../../transport/session-mux/index.ts'

export interface AgentSessionInfo {
  sessionId: string
  tunnelId: string
  nodeId: string
  instance: string
  remoteAddress: string
  connectedAt: string
}

export interface AgentSessionOptions {
  /** how long close() lets in-flight relays finish before destroying */
  drainTimeoutMs: number
  log: Logger
}

/**
 * The server's end of one authenticated agent connection: the opening side of a SessionMux on the
 * agent's upgraded TLS socket (the server opens one relay stream per public client connection).
 *
 *   open ──close() / agent GOAWAY──▶ draining ──last relay done / drain timer──▶ closed
 *     └──────destroy(err) / ping timeout / socket loss──────────────────────────────▲
 */
export class AgentSession extends EventEmitter {
  readonly info: AgentSessionInfo
  readonly #mux: SessionMux
  readonly #options: AgentSessionOptions
  readonly #log: Logger
  #state: 'open' | 'draining' | 'closed' = 'open'
  #drainTimer: NodeJS.Timeout | undefined
  #closeReason: TunnelError | undefined

  constructor(mux: SessionMux, info: AgentSessionInfo, options: AgentSessionOptions) {
    super()
    this.#mux = mux
    this.info = info
    this.#options = options
    this.#log = options.log.child({ sessionId: info.sessionId, tunnelId: info.tunnelId, nodeId: info.nodeId })
    mux.on('close', (reason: TunnelError | undefined) => {
      if (reason !== undefined && this.#closeReason === undefined) this.#closeReason = reason
      this.#finish()
    })
    mux.on('goaway', () => {
      // The agent is leaving gracefully: take no new relays, let the in-flight ones end. Its own
      // drain limit decides how long they may take: it closes the connection when they are done.
      if (this.#state === 'open') this.#beginDrain(false)
    })
    mux.on('idle', () => {
      if (this.#state === 'draining') this.destroy()
    })
    mux.startPings()
    mux.sendControl({ t: 'ready' })
  }

  get activeStreams(): number {
    return this.#mux.streamCount
  }

  /** Over: closed or destroyed (it may have ended before anyone registered it). */
  get closed(): boolean {
    return this.#state === 'closed'
  }

  /** Live and accepting new relays. */
  get isOpen(): boolean {
    return this.#state === 'open' && this.#mux.canOpen
  }

  /**
   * Connected and not leaving, whether or not it can take another relay right now: a session
   * carrying as many relays as the agent accepts is not isOpen, but the tunnel is not down.
   */
  get isLive(): boolean {
    return this.#state === 'open' && (this.#mux.canOpen || this.#mux.atStreamLimit)
  }

  /**
   * Live, but carrying as many relays as it may: the agent's own stream limit, or maxStreams when
   * that is lower (the server's limit). Such a session takes new relays again as soon as one ends.
   */
  isFull(maxStreams: number): boolean {
    return this.isLive && (this.#mux.atStreamLimit || this.#mux.streamCount >= maxStreams)
  }

  get closeReason(): TunnelError | undefined {
    return this.#closeReason
  }

  /**
   * Opens a relay stream carrying one client connection. Throws when the session is not open.
   * `handlers.draining` is called if the session starts draining while the stream is open, so the
   * owner can move to another session between requests instead of holding this one open.
   */
  openRelay(clientAddress: string, handlers: RelayStreamHandlers): RelayStream {
    if (!this.isOpen) throw new TunnelError('TUN_ERR_SESSION_LOST', 'agent session is closing')
    const stream = this.#mux.open(clientAddress)
    stream.attach(handlers)
    return stream
  }

  /** Tells the agent which tunnel server replicas it may keep sessions to (`self`: this one). */
  announceReplicas(self: string, replicas: ReplicaEndpoint[]): void {
    if (this.#state !== 'closed') this.#mux.sendControl({ t: 'replicas', self, replicas })
  }

  /** Tells the agent why it must stop (e.g. the tunnel was deleted), then ends the session at once. */
  revoke(error: TunnelError): void {
    if (this.#state === 'closed') return
    this.#closeReason = error
    this.#mux.sendControl({ t: 'revoke', code: error.code, reason: error.message })
    // The frame leaves first, then the connection closes; nobody can use the session meanwhile.
    this.#mux.end()
    this.#finish()
  }

  /** Graceful: GOAWAY, no new relays, in-flight relays finish, then the socket closes. */
  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve()
    const done = new Promise<void>((resolve) => this.once('closed', () => resolve()))
    if (this.#state === 'open') this.#beginDrain(true)
    return done
  }

  #beginDrain(timed: boolean): void {
    this.#state = 'draining'
    this.emit('draining')
    this.#mux.goaway()
    for (const stream of [...this.#mux.streams()]) stream.notifyDraining()
    if (this.#mux.streamCount === 0) {
      this.#mux.end()
      return
    }
    if (timed) this.#drainTimer = setTimeout(() => this.destroy(), this.#options.drainTimeoutMs)
  }

  destroy(err?: TunnelError): void {
    if (err !== undefined && this.#closeReason === undefined) this.#closeReason = err
    if (this.#state === 'draining' && err === undefined && this.#mux.streamCount === 0) this.#mux.end()
    else this.#mux.destroy(this.#closeReason)
    this.#finish()
  }

  #finish(): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    clearTimeout(this.#drainTimer)
    if (!this.#mux.closed && !this.#mux.ending) this.#mux.destroy(this.#closeReason)
    this.#log.info({ reason: this.#closeReason?.message }, 'agent session closed')
    this.emit('closed')
  }
}
