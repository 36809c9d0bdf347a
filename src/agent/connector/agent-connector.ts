import { EventEmitter } from 'node:events'
import { constants as h2c, performServerHandshake, type ServerHttp2Session, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import { TunnelError, errorCatalog, isTunnelError, type ErrorCode } from '../../errors/index.ts'
import { ControlMessageDecoder, type ControlMessage, type SecurityKey, type SessionWelcome } from '../../protocol/index.ts'
import { dialAgentSession, type AgentDialOptions } from '../../transport/agent-dial.ts'
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

const STREAM_WINDOW_BYTES = 8 * 1024 * 1024
const SESSION_WINDOW_BYTES = 64 * 1024 * 1024

/**
 * Failures only a change of this node's configuration fixes that are not about the key: shown as
 * UNAVAILABLE (DESIGN.md puts proxy problems there; ERROR means the server rejected the key), but
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
 * Emits 'status' (AgentStatus) on every change.
 */
export class AgentConnector extends EventEmitter {
  #options: AgentConnectorOptions
  #log: Logger
  #backoff: Backoff
  #status: AgentStatus
  #session: ServerHttp2Session | undefined
  #relays = new Map<number, UpstreamRelay>()
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
    return this.#relays.size
  }

  start(): void {
    this.#log.info({ status: this.#status.status, reason: this.#status.reason }, 'agent status')
    this.#loop ??= this.#run()
  }

  #setStatus(status: AgentStatusName, reason: string, code?: string): void {
    if (this.#status.status === status && this.#status.reason === reason) return
    this.#status = { status, reason, ...(code === undefined ? {} : { code }), since: new Date().toISOString() }
    const level = status === 'ERROR' ? 'error' : status === 'UNAVAILABLE' ? 'warn' : 'info'
    this.#log[level]({ status, reason, code }, 'agent status')
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
        const ended = await this.#serve(dialed.socket, dialed.welcome)
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
        if (e.retryable) {
          this.#setStatus('UNAVAILABLE', e.message, e.code)
          waitMs = this.#backoff.next()
        } else {
          this.#setStatus(NODE_CONFIG_CODES.has(e.code) ? 'UNAVAILABLE' : 'ERROR', e.message, e.code)
          waitMs = this.#options.rejectedRetryMs
        }
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
  #serve(socket: import('node:tls').TLSSocket, welcome: SessionWelcome): Promise<TunnelError | undefined> {
    return new Promise((resolve) => {
      let endReason: TunnelError | undefined
      let onControlReady = (): void => {}
      const session = performServerHandshake(socket, {
        settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: this.#options.maxStreams + 1, enablePush: false },
        maxSessionMemory: 128,
      })
      this.#session = session
      const log = this.#log.child({ sessionId: welcome.sessionId })
      let pingTimer: NodeJS.Timeout | undefined
      const finish = (): void => {
        clearInterval(pingTimer)
        if (!session.destroyed) session.destroy()
        if (!socket.destroyed) socket.destroy()
        for (const relay of this.#relays.values()) relay.abort()
        this.#relays.clear()
        if (this.#session === session) this.#session = undefined
        resolve(endReason)
      }
      session.on('error', (err) => log.debug({ err }, 'session error'))
      session.on('close', finish)
      session.on('goaway', (code: number) => {
        // The server drains (restart or shutdown): finish what runs, then redial.
        if (code !== h2c.NGHTTP2_NO_ERROR) log.info({ code }, 'server sent goaway')
      })
      session.on('remoteSettings', () => {
        try {
          session.setLocalWindowSize(SESSION_WINDOW_BYTES)
        } catch {
          // window sizing is an optimisation
        }
      })
      session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
        stream.on('error', () => {})
        if (headers[':path'] === '/control') this.#serveControl(stream, session, (e) => (endReason = e), () => onControlReady())
        else this.#serveRelay(stream)
      })
      pingTimer = setInterval(() => {
        if (session.destroyed) return
        const deadline = setTimeout(() => {
          endReason = new TunnelError('TUN_ERR_SESSION_LOST', 'the tunnel server stopped answering keepalive pings; reconnecting')
          session.destroy()
        }, welcome.pingTimeoutMs)
        try {
          session.ping(() => clearTimeout(deadline))
        } catch {
          clearTimeout(deadline)
        }
      }, welcome.pingIntervalMs)
      // CONNECTED only once the server opened the control stream: it registers the session first.
      const setupTimer = setTimeout(() => {
        endReason = new TunnelError('TUN_ERR_SESSION_LOST', 'the tunnel server did not finish setting up the session; reconnecting')
        session.destroy()
      }, this.#options.connectTimeoutMs)
      session.once('close', () => clearTimeout(setupTimer))
      onControlReady = () => {
        clearTimeout(setupTimer)
        this.#welcome = welcome
        this.#metrics.sessionConnected(this.#connectedBefore)
        this.#connectedBefore = true
        this.#setStatus('CONNECTED', `connected to ${this.#options.key.serverUrl} as tunnel "${welcome.tunnelName}"`)
      }
    })
  }

  #serveControl(stream: ServerHttp2Stream, session: ServerHttp2Session, onRevoke: (e: TunnelError) => void, onReady: () => void): void {
    stream.respond({ ':status': 200 })
    onReady()
    const decoder = new ControlMessageDecoder()
    // 'data' is emitted while nghttp2 is still parsing the frames that carried it. Resetting
    // streams or destroying the session from there makes Node's http2 (20.x) send from inside its
    // receive loop: with a relay open, that never returns and fills memory (node#64113). So the
    // messages are acted on a turn later, outside nghttp2.
    const act = (messages: ControlMessage[]): void => {
      for (const m of messages) {
        if (m.t === 'abort') this.#relays.get(m.id)?.abort()
        else if (m.t === 'revoke') {
          const code = Object.hasOwn(errorCatalog, m.code) ? (m.code as ErrorCode) : 'TUN_ERR_KEY_REJECTED'
          onRevoke(new TunnelError(code, m.reason))
          session.destroy()
        }
      }
    }
    stream.on('data', (chunk: Buffer) => {
      let messages
      try {
        messages = decoder.push(chunk)
      } catch (err) {
        this.#log.warn({ err }, 'bad control message; dropping session')
        setImmediate(() => session.destroy())
        return
      }
      if (messages.length > 0) setImmediate(act, messages)
    })
  }

  #serveRelay(stream: ServerHttp2Stream): void {
    const id = stream.id ?? -1
    const relay = new UpstreamRelay(stream, this.#options.upstream, {
      connectTimeoutMs: this.#options.upstreamConnectTimeoutMs,
      log: this.#log,
      metrics: this.#metrics,
    })
    this.#relays.set(id, relay)
    stream.once('close', () => {
      if (this.#relays.get(id) === relay) this.#relays.delete(id)
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
    const session = this.#session
    if (session !== undefined && !session.destroyed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => session.destroy(), this.#options.drainTimeoutMs)
        session.once('close', () => {
          clearTimeout(timer)
          resolve()
        })
        if (this.#relays.size === 0) session.destroy()
        else session.close()
      })
    }
    await this.#loop
  }
}
