import { EventEmitter } from 'node:events'
import { TunnelError, errorCatalog, isTunnelError, type ErrorCode } from '../../errors/index.ts'
import { STREAM_WINDOW_BYTES, type ControlMessage, type SecurityKey, type SessionWelcome } from '../../protocol/index.ts'
import { SessionMux, type RelayStream } from '../../transport/session-mux/index.ts'
import { dialAgentSession, type AgentDialOptions, type DialedSession } from '../../transport/agent-dial.ts'
import type { Logger } from '../../observability/index.ts'
import { NO_AGENT_METRICS, type AgentMetricsSink } from '../../observability/metrics/index.ts'
import type { ProxySettings } from '../../transport/proxy-settings.ts'
import { UpstreamRelay, type UpstreamTarget } from '../upstream/upstream-relay.ts'
import { Backoff } from '../../transport/backoff.ts'
import type { AgentStatus, AgentStatusName } from './agent-status.ts'

export interface AgentConnectorOptions {
  key: SecurityKey
  upstream: UpstreamTarget
  nodeId: string
  instance: string
  agentVersion: string
  ca?: string | undefined
  /** HTTP CONNECT proxy and NO_PROXY list for the connection to the server; undefined: direct */
  proxy?: ProxySettings | undefined
  connectTimeoutMs: number
  upstreamConnectTimeoutMs: number
  /** relays one session carries at once */
  maxStreams: number
  /** how long close() lets in-flight relays finish */
  drainTimeoutMs: number
  backoff?: { initialMs?: number; maxMs?: number; random?: () => number }
  /** wait after the server rejected the key (ERROR), so a dead key does not hammer the server */
  rejectedRetryMs: number
  log: Logger
  /** sessions, failed dials and upstream connections are counted here; absent: nothing is */
  metrics?: AgentMetricsSink | undefined
}

const PING_TIMEOUT_MESSAGE = 'the tunnel server stopped answering keepalive pings; reconnecting'

/**
 * Failures only a change of this node's configuration fixes that are not about the key: shown as
 * UNAVAILABLE (docs/onprem.md puts proxy problems there; ERROR means the server rejected the key), but
 * retried as slowly as a rejected key, since each retry of a 407 counts against the proxy account.
 */
const NODE_CONFIG_CODES: ReadonlySet<string> = new Set(['TUN_ERR_PROXY_AUTH_REQUIRED'])

/**
 * Keeps one session to the tunnel server alive: dial, serve relays, detect a dead server by PING,
 * redial with jittered back-off. A rejected key (ERROR) waits minutes before the next attempt.
 *
 *   CONNECTING ──101──▶ CONNECTED ──lost──▶ UNAVAILABLE ──redial──▶ CONNECTED …
 *        │                   │
 *        └──key rejected─────┴──revoked──▶ ERROR ──(rejectedRetryMs)──▶ redial
 *
 * Emits 'status' (AgentStatus) on every change, and 'replicas' (ReplicaEndpoint[], self) when the
 * server names the tunnel server replicas it runs.
 */
export class AgentConnector extends EventEmitter {
  #options: AgentConnectorOptions
  #log: Logger
  #backoff: Backoff
  #status: AgentStatus
  #session: SessionMux | undefined
  #stopped = false
  #abort = new AbortController()
  #retryTimer: NodeJS.Timeout | undefined
  #wake: (() => void) | undefined
  #loop: Promise<void> | undefined
  #welcome: SessionWelcome | undefined
  readonly #metrics: AgentMetricsSink
  /** this connector had a session before: the next one is a reconnect */
  #connectedBefore = false

  constructor(options: AgentConnectorOptions) {
    super()
    this.#options = options
    this.#log = options.log.child({ component: 'connector', tunnelId: options.key.tunnelId, nodeId: options.nodeId })
    this.#backoff = new Backoff(options.backoff ?? {})
    this.#metrics = options.metrics ?? NO_AGENT_METRICS
    this.#status = { status: 'CONNECTING', reason: 'connecting to the tunnel server', since: new Date().toISOString() }
  }

  get status(): AgentStatus {
    return this.#status
  }

  /** what the server said when the current (or last) session was set up */
  get welcome(): SessionWelcome | undefined {
    return this.#welcome
  }

  get activeRelays(): number {
    return this.#session?.streamCount ?? 0
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  /**
   * One session's status is logged at debug only: the node's status, summed over its sessions and
   * held at CONNECTING through the connect grace, is what `agent status` lines report (NodeSessions).
   */
  #setStatus(status: AgentStatusName, reason: string, code?: string): void {
    if (this.#status.status === status && this.#status.reason === reason) return
    this.#status = { status, reason, ...(code === undefined ? {} : { code }), since: new Date().toISOString() }
    this.#log.debug({ status, reason, code }, 'session status')
    this.emit('status', this.#status)
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let waitMs: number
      try {
        const dialed = await dialAgentSession(this.#options.key, this.#dialOptions())
        if (this.#stopped) {
          dialed.socket.destroy()
          break
        }
        this.#backoff.reset()
        const ended = await this.#serve(dialed)
        if (this.#stopped) break
        if (ended !== undefined && !ended.retryable) {
          this.#setStatus('ERROR', ended.message, ended.code)
          waitMs = this.#options.rejectedRetryMs
        } else {
          this.#setStatus('UNAVAILABLE', ended?.message ?? 'connection to the tunnel server was lost; reconnecting', ended?.code ?? 'TUN_ERR_SESSION_LOST')
          waitMs = this.#backoff.next()
        }
      } catch (err) {
        if (this.#stopped) break
        const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_SERVER_UNREACHABLE', String(err))
        this.#metrics.connectFailed(e.code)
        waitMs = e.retryable ? this.#backoff.next() : this.#options.rejectedRetryMs
        // Every attempt, not only status changes: a node failing the same way each time changes no
        // status, and "is it still trying, and what does it get" is the question. The target is the
        // key's server URL and the reason the dial's error; neither holds the secret.
        this.#log.debug({ target: this.#options.key.serverUrl, code: e.code, reason: e.message, retryInMs: waitMs }, 'dial failed')
        if (e.retryable) this.#setStatus('UNAVAILABLE', e.message, e.code)
        else this.#setStatus(NODE_CONFIG_CODES.has(e.code) ? 'UNAVAILABLE' : 'ERROR', e.message, e.code)
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        this.#retryTimer = setTimeout(resolve, waitMs)
      })
      this.#wake = undefined
    }
  }

  #dialOptions(): AgentDialOptions {
    return {
      nodeId: this.#options.nodeId,
      instance: this.#options.instance,
      agentVersion: this.#options.agentVersion,
      ca: this.#options.ca,
      proxy: this.#options.proxy,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      signal: this.#abort.signal,
    }
  }

  /** Serves one session until it ends; resolves with why it ended (undefined: plain loss). */
  #serve({ socket, welcome, input }: DialedSession): Promise<TunnelError | undefined> {
    return new Promise((resolve) => {
      let endReason: TunnelError | undefined
      const mux = new SessionMux(socket, {
        input,
        role: 'agent',
        streamWindowBytes: STREAM_WINDOW_BYTES,
        maxStreams: this.#options.maxStreams,
        pingIntervalMs: welcome.pingIntervalMs,
        pingTimeoutMs: welcome.pingTimeoutMs,
        pingTimeoutMessage: PING_TIMEOUT_MESSAGE,
      })
      this.#session = mux
      const log = this.#log.child({ sessionId: welcome.sessionId })
      // CONNECTED only once the server said ready: it registers the session first.
      const setupTimer = setTimeout(() => {
        endReason = new TunnelError('TUN_ERR_SESSION_LOST', 'the tunnel server did not finish setting up the session; reconnecting')
        mux.destroy(endReason)
      }, this.#options.connectTimeoutMs)
      mux.once('close', (reason: TunnelError | undefined) => {
        clearTimeout(setupTimer)
        if (reason?.code === 'TUN_ERR_SESSION_PROTOCOL') log.warn({ err: reason }, 'session protocol error; reconnecting')
        // A ping timeout or a broken frame says more than "lost"; a closed connection says nothing more.
        if (reason !== undefined && (reason.code === 'TUN_ERR_SESSION_PROTOCOL' || reason.code === 'TUN_ERR_SESSION_PING_TIMEOUT')) endReason ??= reason
        if (this.#session === mux) this.#session = undefined
        resolve(endReason)
      })
      mux.on('goaway', () => {
        // The server drains (restart or shutdown): finish what runs; the server closes when done.
        log.debug('server sent goaway')
      })
      mux.on('control', (m: ControlMessage) => {
        if (m.t === 'ready') {
          clearTimeout(setupTimer)
          mux.startPings()
          this.#welcome = welcome
          this.#metrics.sessionConnected(this.#connectedBefore)
          this.#connectedBefore = true
          this.#setStatus('CONNECTED', `connected to ${this.#options.key.serverUrl} as tunnel "${welcome.tunnelName}"`)
        } else if (m.t === 'revoke') {
          const code = Object.hasOwn(errorCatalog, m.code) ? (m.code as ErrorCode) : 'TUN_ERR_KEY_REJECTED'
          endReason = new TunnelError(code, m.reason)
          mux.destroy(endReason)
        } else if (m.t === 'replicas') {
          this.emit('replicas', m.replicas, m.self)
        }
      })
      mux.on('stream', (stream: RelayStream) => {
        // The relay lives as long as its stream and socket; nothing here needs to hold it.
        new UpstreamRelay(stream, this.#options.upstream, {
          connectTimeoutMs: this.#options.upstreamConnectTimeoutMs,
          log: this.#log,
          metrics: this.#metrics,
        })
      })
    })
  }

  /** Redials now instead of waiting out the back-off (e.g. the key was re-added). */
  retryNow(): void {
    clearTimeout(this.#retryTimer)
    this.#wake?.()
  }

  /** GOAWAY to the server, let in-flight relays finish (up to drainTimeoutMs), then stop. */
  async close(): Promise<void> {
    this.#stopped = true
    this.#abort.abort()
    clearTimeout(this.#retryTimer)
    this.#wake?.()
    const mux = this.#session
    if (mux !== undefined && !mux.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => mux.destroy(), this.#options.drainTimeoutMs)
        mux.once('close', () => {
          clearTimeout(timer)
          resolve()
        })
        mux.goaway()
        if (mux.streamCount === 0) mux.end()
        else mux.once('idle', () => mux.end())
      })
    }
    await this.#loop
  }
}
