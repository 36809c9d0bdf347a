import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Logger } from '../../observability/index.ts'
import type { ReplicaEndpoint, SessionWelcome } from '../../protocol/index.ts'
import { AgentConnector, type AgentConnectorOptions } from './agent-connector.ts'
import type { AgentStatus, AgentStatusName } from './agent-status.ts'

export interface NodeSessionsOptions {
  /** sessions this node keeps to the server */
  sessions: number
  /**
   * A node that has not been connected yet with this key shows CONNECTING, not UNAVAILABLE, for
   * this long: a node that is still starting is not a failure (docs/onprem.md: the connect grace).
   */
  connectGraceMs: number
  /** replicas: keep sessions to at most this many of the server's replicas; default all */
  maxReplicas?: number | undefined
  now?: () => number
}

/** Failures a node that is still starting may see (network not up yet, server restarting). */
const TRANSIENT_CODES = new Set(['TUN_ERR_SERVER_UNREACHABLE', 'TUN_ERR_SERVER_UNAVAILABLE', 'TUN_ERR_SESSION_LOST', 'TUN_ERR_SESSION_PING_TIMEOUT'])

/** A node's status: its sessions summed up, with how many are live. */
export interface NodeStatus extends AgentStatus {
  sessions: number
  sessionsWanted: number
}

/** The sessions to one agent endpoint: the key's own URL, or one replica's. */
interface SessionGroup {
  url: string
  connectors: AgentConnector[]
}

/**
 * The sessions one agent node keeps to the tunnel server for one key (`--sessions`, default 2), and
 * the node's status derived from them: CONNECTED while any session is, ERROR when the server
 * rejected the key, CONNECTING within the connect grace, UNAVAILABLE otherwise.
 *
 * When the server runs replicas it names them (with the URL each advertises) on every session;
 * the node then keeps `sessions` sessions to each of them (or to `maxReplicas`, chosen by
 * rendezvous hashing of node and replica so that the nodes of an instance spread), so that every
 * replica's ingress can reach the instance. The sessions to the key's own URL (a load balancer, or
 * one replica) are the way in: they are let go once a replica's own sessions are up, unless the
 * key's URL is one of the replicas'. A replica that leaves the list is let go; one that joins is dialled.
 *
 *   key URL ──replicas named──▶ one group per replica URL ──first replica session up──▶ key URL group drained
 *
 * Emits 'status' (NodeStatus) on every change.
 */
export class NodeSessions extends EventEmitter {
  readonly #connector: AgentConnectorOptions
  readonly #options: NodeSessionsOptions
  readonly #now: () => number
  readonly #startedAt: number
  readonly #log: Logger
  /** by URL; the first is the key's own */
  readonly #groups = new Map<string, SessionGroup>()
  /** groups let go of, still draining: their connectors count for nothing but are waited for at close */
  readonly #leaving = new Set<Promise<void>>()
  #everConnected = false
  #status: NodeStatus
  #graceTimer: NodeJS.Timeout | undefined
  /** armed while the key's URL is let go and no replica session is up: then the key's URL is dialled again */
  #fallbackTimer: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined
  #started = false
  /** the replica URLs last chosen, in order; empty: a lone server */
  #replicaUrls: string[] = []
  /** what each connected session last heard of the replicas */
  readonly #lists = new Map<AgentConnector, ReplicaEndpoint[]>()

  constructor(connector: AgentConnectorOptions, options: NodeSessionsOptions) {
    super()
    this.#connector = connector
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#startedAt = this.#now()
    this.#log = connector.log.child({ component: 'connector', tunnelId: connector.key.tunnelId, nodeId: connector.nodeId })
    this.#addGroup(connector.key.serverUrl, connector.key.certificatePin)
    // The grace counts from #startedAt; the first status says so to the millisecond.
    this.#status = { ...this.#derive(), since: new Date(this.#startedAt).toISOString() }
  }

  /** every session of every group */
  get connectors(): readonly AgentConnector[] {
    return [...this.#groups.values()].flatMap((g) => g.connectors)
  }

  /** the endpoints this node keeps sessions to (the key's URL first while it is used) */
  get endpoints(): string[] {
    return [...this.#groups.keys()]
  }

  /** the ids of the replicas its connected sessions last heard of: what `maxReplicas` chooses from */
  get replicasHeard(): string[] {
    return [...new Set([...this.#lists.values()].flat().map((r) => r.id))].sort()
  }

  #addGroup(url: string, pin: string | undefined): void {
    const base = this.#connector
    const { certificatePin: _keyPin, ...rest } = base.key
    const key = { ...rest, serverUrl: url, ...(pin === undefined ? {} : { certificatePin: pin }) }
    const group: SessionGroup = { url, connectors: [] }
    const count = Math.max(1, this.#options.sessions)
    const labelled = this.#groups.size === 0 ? {} : { server: url }
    for (let i = 0; i < count; i++) {
      const c = new AgentConnector({ ...base, key, log: base.log.child({ session: i + 1, ...labelled }) })
      c.on('status', () => {
        // A session that is gone no longer vouches for its replica list.
        if (c.status.status !== 'CONNECTED' && this.#lists.delete(c)) this.#onReplicas()
        this.#update()
      })
      c.on('replicas', (replicas: ReplicaEndpoint[]) => {
        this.#lists.set(c, replicas)
        this.#onReplicas()
      })
      group.connectors.push(c)
      if (this.#started) c.start()
    }
    this.#groups.set(url, group)
  }

  #removeGroup(url: string): void {
    const group = this.#groups.get(url)
    if (group === undefined) return
    this.#groups.delete(url)
    for (const c of group.connectors) this.#lists.delete(c)
    const leaving = Promise.all(group.connectors.map((c) => c.close())).then(() => {})
    this.#leaving.add(leaving)
    void leaving.finally(() => this.#leaving.delete(leaving))
  }

  /**
   * Replicas named their replicas: keep a group per chosen replica URL, let the others go. Each
   * replica sees the others join and leave at its own moment (its heartbeats, its bus links), so the
   * node follows the union of what its connected sessions last heard: a replica is let go once no
   * live session names it, not when the first one stops naming it. With no list at all (every
   * session down) the groups stay as they are; the fallback to the key's URL covers that.
   */
  #onReplicas(): void {
    if (this.#closing !== undefined || this.#lists.size === 0) return
    const keyUrl = this.#connector.key.serverUrl
    const byUrl = new Map<string, ReplicaEndpoint>()
    const named = [...this.#lists.values()].flat().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    for (const r of named) if (!byUrl.has(r.url)) byUrl.set(r.url, r)
    const chosen = this.#choose([...byUrl.values()])
    const urls = chosen.map((r) => r.url)
    if (JSON.stringify(urls) === JSON.stringify(this.#replicaUrls)) return
    this.#replicaUrls = urls
    // Replicas that all advertise the key's URL (a load balancer in front of them) need no groups of their own.
    if (urls.length === 0 || (urls.length === 1 && urls[0] === keyUrl)) {
      for (const url of [...this.#groups.keys()]) if (url !== keyUrl) this.#removeGroup(url)
      if (!this.#groups.has(keyUrl)) this.#addGroup(keyUrl, this.#connector.key.certificatePin)
      this.#update()
      return
    }
    for (const r of chosen) if (!this.#groups.has(r.url)) this.#addGroup(r.url, r.pin)
    for (const url of [...this.#groups.keys()]) {
      if (!urls.includes(url) && url !== keyUrl) this.#removeGroup(url)
    }
    this.#update()
  }

  /** At most maxReplicas of them, the same ones for this node every time (rendezvous hashing). */
  #choose(replicas: ReplicaEndpoint[]): ReplicaEndpoint[] {
    const max = this.#options.maxReplicas
    if (max === undefined || replicas.length <= max) return replicas
    const score = (r: ReplicaEndpoint): string => createHash('sha256').update(`${this.#connector.nodeId}\n${r.id}`).digest('hex')
    return [...replicas].sort((a, b) => (score(a) < score(b) ? -1 : 1)).slice(0, max)
  }

  /**
   * The key's URL group is only the way in when it is not one of the replicas: drop it once a
   * replica's own session is up. And the way back: when no replica session has been up for the
   * connect grace (every advertised URL unreachable, replicas replaced while the node was away),
   * dial the key's URL again; the list it brings starts over.
   */
  #retireEntry(): void {
    const keyUrl = this.#connector.key.serverUrl
    const replicaUp = [...this.#groups.values()].some((g) => g.url !== keyUrl && g.connectors.some((c) => c.status.status === 'CONNECTED'))
    if (replicaUp || this.#groups.has(keyUrl)) {
      clearTimeout(this.#fallbackTimer)
      this.#fallbackTimer = undefined
    }
    if (this.#replicaUrls.length === 0 || this.#replicaUrls.includes(keyUrl)) return
    if (this.#groups.has(keyUrl)) {
      if (replicaUp) this.#removeGroup(keyUrl)
      return
    }
    if (!replicaUp && this.#fallbackTimer === undefined && this.#closing === undefined) {
      this.#fallbackTimer = setTimeout(() => {
        this.#fallbackTimer = undefined
        if (this.#closing !== undefined || this.#groups.has(keyUrl)) return
        this.#replicaUrls = []
        this.#addGroup(keyUrl, this.#connector.key.certificatePin)
        this.#update()
      }, this.#options.connectGraceMs)
      this.#fallbackTimer.unref()
    }
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
    this.#started = true
    this.#logStatus(this.#status)
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
    this.#retireEntry()
    const next = this.#derive()
    const prev = this.#status
    if (next.status === prev.status && next.reason === prev.reason && next.sessions === prev.sessions) return
    this.#status = next
    this.#logStatus(next)
    this.emit('status', next)
  }

  /**
   * The node's status, as an instance node writes it to its row: a single agent (no database) has
   * only its log to show it, so it is logged here, once per change, for both kinds of node.
   */
  #logStatus(st: NodeStatus): void {
    const level = st.status === 'ERROR' ? 'error' : st.status === 'UNAVAILABLE' ? 'warn' : 'info'
    this.#log[level]({ status: st.status, reason: st.reason, code: st.code, since: st.since, sessions: st.sessions, sessionsWanted: st.sessionsWanted }, 'agent status')
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
      const groups = [...this.#groups.values()]
      let reason: string
      if (groups.length > 1) {
        const up = groups.filter((g) => g.connectors.some((c) => c.status.status === 'CONNECTED')).length
        reason = `connected to ${up} of ${groups.length} tunnel server replicas (${connected.length} of ${wanted} sessions)`
      } else reason = connected.length === wanted ? first.reason : `${first.reason} (${connected.length} of ${wanted} sessions)`
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
    clearTimeout(this.#fallbackTimer)
    this.#closing ??= Promise.all([...this.connectors.map((c) => c.close()), ...this.#leaving]).then(() => {})
    return this.#closing
  }
}
