import { EventEmitter } from 'node:events'
import type { SessionWelcome } from '../../protocol/index.ts'
import { AgentConnector, type AgentConnectorOptions } from './agent-connector.ts'
import type { AgentStatus, AgentStatusName } from './agent-status.ts'

export interface NodeSessionsOptions {
  /** sessions this node keeps to the server */
  sessions: number
  /**
   * A node that has not been connected yet with this key shows CONNECTING, not UNAVAILABLE, for
   * this long: a node that is still starting is not a failure (DESIGN.md: the connect grace).
   */
  connectGraceMs: number
  now?: () => number
}

/** Failures a node that is still starting may see (network not up yet, server restarting). */
const TRANSIENT_CODES = new Set(['TUN_ERR_SERVER_UNREACHABLE', 'TUN_ERR_SERVER_UNAVAILABLE', 'TUN_ERR_SESSION_LOST'])

/** A node's status: its sessions summed up, with how many are live. */
export interface NodeStatus extends AgentStatus {
  sessions: number
  sessionsWanted: number
}

/**
 * The sessions one agent node keeps to the tunnel server for one key (`--sessions`, default 2), and
 * the node's status derived from them: CONNECTED while any session is, ERROR when the server
 * rejected the key, CONNECTING within the connect grace, UNAVAILABLE otherwise.
 *
 * Emits 'status' (NodeStatus) on every change.
 */
export class NodeSessions extends EventEmitter {
  readonly connectors: readonly AgentConnector[]
  readonly #options: NodeSessionsOptions
  readonly #now: () => number
  readonly #startedAt: number
  #everConnected = false
  #status: NodeStatus
  #graceTimer: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined

  constructor(connector: AgentConnectorOptions, options: NodeSessionsOptions) {
    super()
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#startedAt = this.#now()
    const count = Math.max(1, options.sessions)
    this.connectors = Array.from({ length: count }, (_, i) => new AgentConnector({ ...connector, log: connector.log.child({ session: i + 1 }) }))
    for (const c of this.connectors) c.on('status', () => this.#update())
    this.#status = this.#derive()
  }

  get status(): NodeStatus {
    return this.#status
  }

  /** what the server said to the first connected session (tunnel and org names) */
  get welcome(): SessionWelcome | undefined {
    return this.connectors.find((c) => c.status.status === 'CONNECTED')?.welcome
  }

  get activeRelays(): number {
    return this.connectors.reduce((n, c) => n + c.activeRelays, 0)
  }

  start(): void {
    for (const c of this.connectors) c.start()
    this.#endGraceIn(this.#options.connectGraceMs)
  }

  /** When the grace ends a node still not connected turns UNAVAILABLE without any event of its own. */
  #endGraceIn(ms: number): void {
    this.#graceTimer = setTimeout(() => {
      // A timer may fire a millisecond or so before now() says the grace is over; #derive would
      // still answer CONNECTING, and a node failing the same way each time sends no other event.
      const left = this.#options.connectGraceMs - (this.#now() - this.#startedAt)
      if (left > 0) this.#endGraceIn(left)
      else this.#update()
    }, ms)
    this.#graceTimer.unref()
  }

  /** Redials every session that waits out a back-off. */
  retryNow(): void {
    for (const c of this.connectors) c.retryNow()
  }

  #update(): void {
    const next = this.#derive()
    const prev = this.#status
    if (next.status === prev.status && next.reason === prev.reason && next.sessions === prev.sessions) return
    this.#status = next
    this.emit('status', next)
  }

  #derive(): NodeStatus {
    const statuses = this.connectors.map((c) => c.status)
    const connected = statuses.filter((s) => s.status === 'CONNECTED')
    const wanted = this.connectors.length
    const base = { sessions: connected.length, sessionsWanted: wanted }
    const since = (name: AgentStatusName): string => (this.#status?.status === name ? this.#status.since : new Date(this.#now()).toISOString())
    if (connected.length > 0) {
      this.#everConnected = true
      const first = connected[0]!
      const reason = connected.length === wanted ? first.reason : `${first.reason} (${connected.length} of ${wanted} sessions)`
      return { status: 'CONNECTED', reason, since: since('CONNECTED'), ...base }
    }
    const error = statuses.find((s) => s.status === 'ERROR')
    if (error !== undefined) return { status: 'ERROR', reason: error.reason, ...(error.code === undefined ? {} : { code: error.code }), since: since('ERROR'), ...base }
    const failed = statuses.find((s) => s.status === 'UNAVAILABLE')
    // Only failures that starting up explains get the grace; a certificate mismatch does not.
    const transient = failed === undefined || failed.code === undefined || TRANSIENT_CODES.has(failed.code)
    const inGrace = transient && !this.#everConnected && this.#now() - this.#startedAt < this.#options.connectGraceMs
    if (failed === undefined || inGrace) {
      const reason = failed === undefined ? statuses[0]!.reason : `still connecting; last attempt: ${failed.reason}`
      return { status: 'CONNECTING', reason, since: since('CONNECTING'), ...base }
    }
    return { status: 'UNAVAILABLE', reason: failed.reason, ...(failed.code === undefined ? {} : { code: failed.code }), since: since('UNAVAILABLE'), ...base }
  }

  /** GOAWAY on every session at once (so the server moves callers off all of them together), then waits for them to drain. */
  close(): Promise<void> {
    clearTimeout(this.#graceTimer)
    this.#closing ??= Promise.all(this.connectors.map((c) => c.close())).then(() => {})
    return this.#closing
  }
}
