import { randomUUID, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import {
  AGENT_CONNECT_PATH,
  AGENT_UPGRADE_TOKEN,
  agentHeaders,
  formatWelcomeHeaders,
  hashSecret,
  parseAgentAuthorization,
  parseNodeId,
  STREAM_WINDOW_BYTES,
  type ReplicaEndpoint,
} from '../../protocol/index.ts'
import { serializeErrorResponse } from '../../protocol/http1/index.ts'
import type { Logger } from '../../observability/index.ts'
import { NO_GATEWAY_METRICS, type GatewayMetrics } from '../../observability/metrics/index.ts'
import { AgentSession, type AgentSessionInfo } from './agent-session.ts'
import { SessionMux } from '../../transport/session-mux/index.ts'
import { acceptedSessionReader, type SessionReader } from '../../transport/session-reader.ts'
import { AuthFailureLimiter } from '../../security/auth-failure-limiter.ts'
import { CredentialCache } from '../../security/credential-cache.ts'
import type { SessionRegistry } from './session-registry.ts'

export interface GatewayTunnel {
  id: string
  name: string
  orgName: string
  secretHash: string
  applicationLinkUrl: string
}

export interface AgentGatewayOptions {
  pingIntervalMs: number
  pingTimeoutMs: number
  drainTimeoutMs: number
  /** relay streams one session may carry at once (client connections) */
  maxStreamsPerSession: number
  /** sessions one tunnel may have open at once, over all its agent nodes */
  maxSessionsPerTunnel?: number
  /** how long the settings exchange after the 101 may take */
  sessionSetupTimeoutMs: number
  authFailures?: { maxFailures?: number; windowMs?: number }
  /** tunnel records kept in memory so a valid key costs no lookup (decision 38) */
  credentialCache?: { ttlMs?: number; maxEntries?: number }
  /** the clock of the limiter and the cache; tests pass their own */
  now?: () => number
}

export interface AgentGatewayDeps {
  registry: SessionRegistry
  findTunnel(id: string): Promise<GatewayTunnel | undefined>
  log: Logger
  /** counts refused authentications; absent: nothing is counted */
  metrics?: GatewayMetrics | undefined
  /** replicas: this one's id and the live replicas agents may dial; absent or empty: a lone server */
  replicas?: () => { self: string; replicas: ReplicaEndpoint[] } | undefined
}

/**
 * Turns an agent's HTTP/1.1 upgrade on the HTTPS listener into an AgentSession: authenticates the
 * key, answers 101, and starts the session framing (the opening side) on the same socket.
 */
export class AgentGateway {
  #options: AgentGatewayOptions
  #deps: AgentGatewayDeps
  #log: Logger
  /** failures per source address */
  #limiter: AuthFailureLimiter
  /** failures per tunnel id, from any address */
  #tunnelLimiter: AuthFailureLimiter
  #tunnels: CredentialCache<GatewayTunnel>
  /**
   * Ids of the tunnels the database holds, as far as this replica knows (read at start, kept in step
   * by creates and deletes here and on the bus). Only decides whether a source over its limit may
   * still have a tunnel looked up; filled from the database, never from what a client sends.
   */
  #knownIds = new Set<string>()
  #metrics: GatewayMetrics
  #pending = new Set<Duplex>()
  /** sessions authenticated but not yet in the registry, by tunnel */
  #settingUp = new Map<string, number>()
  #closing = false

  constructor(options: AgentGatewayOptions, deps: AgentGatewayDeps) {
    this.#options = options
    this.#deps = deps
    this.#log = deps.log.child({ component: 'agent-gateway' })
    const clock = options.now === undefined ? {} : { now: options.now }
    this.#limiter = new AuthFailureLimiter({ ...options.authFailures, ...clock })
    this.#tunnelLimiter = new AuthFailureLimiter({ ...options.authFailures, ...clock })
    this.#tunnels = new CredentialCache({ ...options.credentialCache, ...clock })
    this.#metrics = deps.metrics ?? NO_GATEWAY_METRICS
  }

  /** True when the request is an agent connect; the caller routes it to handleUpgrade. */
  static matches(req: IncomingMessage): boolean {
    return (req.url ?? '').split('?')[0] === AGENT_CONNECT_PATH
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const remoteAddress = (socket as Socket).remoteAddress ?? 'unknown'
    socket.on('error', () => {})
    this.#pending.add(socket)
    socket.once('close', () => this.#pending.delete(socket))
    this.#accept(req, socket as Socket, head, remoteAddress).catch((err: unknown) => {
      this.#reject(socket, isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', 'internal error', { cause: err }), remoteAddress)
    })
  }

  async #accept(req: IncomingMessage, socket: Socket, head: Buffer, remoteAddress: string): Promise<void> {
    if (this.#closing) throw new TunnelError('TUN_ERR_SERVER_UNAVAILABLE', 'the tunnel server is shutting down')
    if (req.method !== 'GET') throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', 'agent connect must be a GET')
    const upgrade = (req.headers.upgrade ?? '').trim()
    if (upgrade.toLowerCase() !== AGENT_UPGRADE_TOKEN) {
      if (upgrade.toLowerCase().startsWith('apptunnel/')) {
        throw new TunnelError('TUN_ERR_HANDSHAKE_VERSION', `agent protocol "${upgrade}" is not supported; this server speaks ${AGENT_UPGRADE_TOKEN}`)
      }
      throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', `Upgrade must be ${AGENT_UPGRADE_TOKEN}`)
    }
    // Decision 38: a limited source is refused what would need the database, never a credential
    // that verifies. The limit is read once, before this attempt counts.
    const limited = this.#limiter.isBlocked(remoteAddress)
    const nodeId = parseNodeId(req.headers[agentHeaders.nodeId] as string | undefined)
    const instance = String(req.headers[agentHeaders.instance] ?? '').slice(0, 200)
    let credentials
    try {
      credentials = parseAgentAuthorization(req.headers.authorization)
    } catch (err) {
      this.#refuse(limited, remoteAddress, undefined, isTunnelError(err) ? err : new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST'))
    }
    const tunnel = await this.#lookup(credentials.tunnelId, limited)
    if (tunnel === undefined) {
      this.#refuse(limited, remoteAddress, credentials.tunnelId, new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', 'tunnel deleted or never existed: create a new tunnel and add its key'))
    }
    const presented = Buffer.from(hashSecret(credentials.secret), 'hex')
    const stored = Buffer.from(tunnel.secretHash, 'hex')
    if (presented.length !== stored.length || !timingSafeEqual(presented, stored)) {
      this.#refuse(limited, remoteAddress, credentials.tunnelId, new TunnelError('TUN_ERR_KEY_REJECTED', 'security key was rejected: the secret does not match this tunnel'))
    }
    if (socket.destroyed) return
    if (this.#closing) throw new TunnelError('TUN_ERR_SERVER_UNAVAILABLE', 'the tunnel server is shutting down')
    // A key holder must not be able to pin unbounded server memory by opening sessions. Sessions
    // still being set up count too: a node's sessions all dial at once.
    const open = this.#deps.registry.sessionsOf(tunnel.id).length + (this.#settingUp.get(tunnel.id) ?? 0)
    const maxSessions = this.#options.maxSessionsPerTunnel ?? 64
    if (open >= maxSessions) {
      throw new TunnelError(
        'TUN_ERR_SESSION_LIMIT',
        `tunnel ${tunnel.id} already has ${open} agent sessions, the most this server accepts: lower --sessions on the agent nodes or stop one`,
      )
    }
    this.#settingUp.set(tunnel.id, (this.#settingUp.get(tunnel.id) ?? 0) + 1)
    try {
      await this.#open(socket, head, tunnel, { nodeId, instance, remoteAddress })
    } finally {
      const left = (this.#settingUp.get(tunnel.id) ?? 1) - 1
      if (left === 0) this.#settingUp.delete(tunnel.id)
      else this.#settingUp.set(tunnel.id, left)
    }
  }

  async #open(socket: Socket, head: Buffer, tunnel: GatewayTunnel, who: { nodeId: string; instance: string; remoteAddress: string }): Promise<void> {
    const { nodeId, instance, remoteAddress } = who

    const sessionId = randomUUID()
    const welcome = formatWelcomeHeaders({
      sessionId,
      tunnelName: tunnel.name,
      orgName: tunnel.orgName,
      pingIntervalMs: this.#options.pingIntervalMs,
      pingTimeoutMs: this.#options.pingTimeoutMs,
      applicationLinkUrl: tunnel.applicationLinkUrl,
    })
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', `Upgrade: ${AGENT_UPGRADE_TOKEN}`]
    for (const [k, v] of Object.entries(welcome)) lines.push(`${k}: ${v}`)
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      socket.write(lines.join('\r\n') + '\r\n\r\n', (err) => (err ? reject(err) : resolve()))
    })
    const session = await this.#startSession(socket, acceptedSessionReader(socket, head), {
      sessionId,
      tunnelId: tunnel.id,
      nodeId,
      instance,
      remoteAddress,
      connectedAt: new Date().toISOString(),
    })
    if (this.#closing) {
      session.destroy()
      return
    }
    this.#pending.delete(socket)
    // Frames read together with the agent's SETTINGS may have ended the session already.
    if (session.closed) return
    this.#deps.registry.add(session)
    const replicas = this.#deps.replicas?.()
    if (replicas !== undefined && replicas.replicas.length > 0) session.announceReplicas(replicas.self, replicas.replicas)
    this.#log.info({ sessionId, tunnelId: tunnel.id, nodeId, remoteAddress }, 'agent connected')
    // The tunnel may have been deleted while this session was being set up, after the delete's
    // revocation swept the registry: look again now that the session is registered.
    // Through the cache: a delete invalidates the entry before it sweeps the registry.
    if ((await this.#tunnels.get(tunnel.id, (id) => this.#deps.findTunnel(id))) === undefined) {
      session.revoke(new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', 'tunnel deleted'))
    }
  }

  /**
   * The tunnel's record from memory, else from the database. A source over its limit, or an id over
   * its own, gets a lookup only for an id this replica knows to exist: that keeps a flood of random
   * ids off the database while the real agent's id, uncached or not, still verifies.
   */
  async #lookup(tunnelId: string, sourceLimited: boolean): Promise<GatewayTunnel | undefined> {
    const cached = this.#tunnels.peek(tunnelId)
    if (cached !== undefined) return cached.value
    if ((sourceLimited || this.#tunnelLimiter.isBlocked(tunnelId)) && !this.#knownIds.has(tunnelId)) {
      this.#metrics.authFailed('TUN_ERR_HANDSHAKE_RATE_LIMITED', tunnelId, 'too many failed agent authentications')
      throw new TunnelError('TUN_ERR_HANDSHAKE_RATE_LIMITED', sourceLimited ? undefined : 'too many failed agent authentications for this tunnel id')
    }
    const tunnel = await this.#tunnels.get(tunnelId, (id) => this.#deps.findTunnel(id))
    if (tunnel === undefined) this.#knownIds.delete(tunnelId)
    else this.#knownIds.add(tunnelId)
    return tunnel
  }

  /** Counts a failed attempt; a source already over its limit is told so rather than why it failed. */
  #refuse(sourceLimited: boolean, remoteAddress: string, tunnelId: string | undefined, err: TunnelError): never {
    this.#limiter.recordFailure(remoteAddress)
    if (tunnelId !== undefined) this.#tunnelLimiter.recordFailure(tunnelId)
    const answer = sourceLimited ? new TunnelError('TUN_ERR_HANDSHAKE_RATE_LIMITED') : err
    this.#metrics.authFailed(answer.code, tunnelId, answer.message)
    throw answer
  }

  /** The ids of every tunnel in the database, read at start. */
  knowTunnels(ids: Iterable<string>): void {
    for (const id of ids) this.#knownIds.add(id)
  }

  /** Whether a tunnel of this id exists, as far as this server knows (no database read). */
  knows(tunnelId: string): boolean {
    return this.#knownIds.has(tunnelId)
  }

  /**
   * A tunnel was created, deleted or had its key changed, here or on another replica: its cached
   * record goes at once, so a deleted tunnel's key is refused on the next connect.
   */
  tunnelChanged(tunnelId: string, change: 'created' | 'deleted'): void {
    this.#tunnels.invalidate(tunnelId)
    if (change === 'created') this.#knownIds.add(tunnelId)
    else this.#knownIds.delete(tunnelId)
  }

  #startSession(socket: Socket, input: SessionReader, info: AgentSessionInfo): Promise<AgentSession> {
    return new Promise((resolve, reject) => {
      const mux = new SessionMux(socket, {
        role: 'server',
        input,
        streamWindowBytes: STREAM_WINDOW_BYTES,
        maxStreams: this.#options.maxStreamsPerSession,
        pingIntervalMs: this.#options.pingIntervalMs,
        pingTimeoutMs: this.#options.pingTimeoutMs,
        pingTimeoutMessage: 'agent did not answer a keepalive ping in time',
      })
      const fail = (err: unknown): void => {
        clearTimeout(timer)
        mux.destroy()
        reject(new TunnelError('TUN_ERR_SESSION_LOST', 'agent session setup failed', { cause: err }))
      }
      const onClose = (reason: TunnelError | undefined): void => fail(reason ?? new Error('closed during setup'))
      const timer = setTimeout(() => fail(new Error('settings exchange timed out')), this.#options.sessionSetupTimeoutMs)
      mux.once('close', onClose)
      mux.once('settings', () => {
        clearTimeout(timer)
        mux.off('close', onClose)
        resolve(new AgentSession(mux, info, { drainTimeoutMs: this.#options.drainTimeoutMs, log: this.#log }))
      })
    })
  }

  #reject(socket: Duplex, err: TunnelError, remoteAddress: string): void {
    const level = err.httpStatus >= 500 && err.code !== 'TUN_ERR_SERVER_UNAVAILABLE' ? 'error' : 'info'
    this.#log[level]({ code: err.code, remoteAddress, err: level === 'error' ? err : undefined }, 'agent connect refused')
    if (socket.destroyed || !socket.writable) {
      socket.destroy()
      return
    }
    const extra: Array<[string, string]> = err.retryable ? [['Retry-After', '5']] : []
    socket.end(serializeErrorResponse(err.httpStatus, err.toJSON(), extra))
    setTimeout(() => socket.destroy(), 1000).unref()
  }

  /** Refuses new agents and drops half-done handshakes. Live sessions are the registry's. */
  close(): void {
    this.#closing = true
    for (const s of this.#pending) s.destroy()
    this.#pending.clear()
  }
}

