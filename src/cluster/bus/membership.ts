import { EventEmitter } from 'node:events'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import type { AgentEndpoint, ClusterNodeKind, ClusterNodeRecord, ClusterNodeRepository } from '../../store/index.ts'
import { systemClock, type Clock } from '../clock.ts'

export interface MembershipOptions {
  nodeId: string
  kind: ClusterNodeKind
  /** HOST:PORT peers dial */
  address: string
  /** how often the heartbeat moves and the peer list is re-read, in ms [5000] */
  heartbeatIntervalMs: number
  /** a node whose heartbeat is older than this is not live, in ms (3 heartbeats) */
  livenessMs: number
}

export interface PeerAddress {
  id: string
  address: string
}

// Rows of nodes silent this long are deleted when a node joins, so the table does not collect
// every node that ever crashed.
const FORGET_SILENT_NODES_MS = 24 * 3600_000

/**
 * This node's row in `cluster_node`: registered at join, heartbeat (with a status JSON) every
 * interval, removed at leave. Each heartbeat also re-reads the live nodes of the same kind and
 * emits 'peers' (PeerAddress[], without this node) and 'members' (ClusterNodeRecord[], with it). A database hiccup skips a beat and is retried
 * at the next; existing links are not touched by it.
 */
export class Membership extends EventEmitter {
  readonly #options: MembershipOptions
  readonly #nodes: ClusterNodeRepository
  readonly #log: Logger
  readonly #clock: Clock
  readonly #status: () => unknown
  readonly #startedAt: string
  #timer: NodeJS.Timeout | undefined
  #beat: Promise<void> | undefined
  #stopped = false
  /** server replicas: where agents reach this one; written with every heartbeat */
  #agentEndpoint: AgentEndpoint | null = null

  constructor(options: MembershipOptions, deps: { nodes: ClusterNodeRepository; log: Logger; clock?: Clock; status: () => unknown }) {
    super()
    this.#options = options
    this.#nodes = deps.nodes
    this.#log = deps.log
    this.#clock = deps.clock ?? systemClock
    this.#status = deps.status
    this.#startedAt = this.#iso(0)
  }

  /** Registers this node; refuses an id that another live node holds at another address. */
  async join(): Promise<void> {
    const { nodeId, address, livenessMs } = this.#options
    const existing = await this.#nodes.get(nodeId)
    if (existing !== undefined && existing.address !== address) {
      const silentMs = this.#clock.now() - Date.parse(existing.heartbeatAt)
      if (silentMs < livenessMs) {
        throw new TunnelError(
          'TUN_ERR_CLUSTER_NODE_ID_TAKEN',
          `cluster node id "${nodeId}" is live at ${existing.address} (heartbeat ${Math.max(0, Math.round(silentMs / 1000))} s ago): give this node another id, or wait ${Math.ceil((livenessMs - silentMs) / 1000)} s if that node is gone`,
        )
      }
    }
    await this.#nodes.pruneSilentSince(this.#iso(-FORGET_SILENT_NODES_MS))
    await this.#nodes.register({ id: nodeId, kind: this.#options.kind, address, startedAt: this.#startedAt, heartbeatAt: this.#iso(0), status: this.#status(), agentEndpoint: this.#agentEndpoint })
  }

  /** Sets where agents reach this replica directly; the next heartbeat writes it. */
  setAgentEndpoint(endpoint: AgentEndpoint | null): void {
    this.#agentEndpoint = endpoint
  }

  /** Heartbeats from now on, the first one at once. */
  start(): void {
    this.#tick()
  }

  /** One heartbeat and peer read now (tests, and after a key change). */
  beat(): Promise<void> {
    this.#beat ??= this.#heartbeat().finally(() => {
      this.#beat = undefined
    })
    return this.#beat
  }

  async leave(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#beat?.catch(() => {})
    await this.#nodes.remove(this.#options.nodeId).catch((err: unknown) => this.#log.warn({ err }, 'could not remove this node from cluster_node'))
  }

  #tick(): void {
    if (this.#stopped) return
    this.beat()
      .catch(() => {})
      .finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(() => this.#tick(), this.#options.heartbeatIntervalMs)
      })
  }

  async #heartbeat(): Promise<void> {
    if (this.#stopped) return
    const { nodeId, kind, address, livenessMs } = this.#options
    try {
      const now = this.#iso(0)
      const status = this.#status()
      if (!(await this.#nodes.heartbeat(nodeId, now, status, this.#agentEndpoint))) {
        // Someone removed our row (an operator, or a prune after a long pause): come back.
        await this.#nodes.register({ id: nodeId, kind, address, startedAt: this.#startedAt, heartbeatAt: now, status, agentEndpoint: this.#agentEndpoint })
      }
      const live: ClusterNodeRecord[] = await this.#nodes.listLive(kind, this.#iso(-livenessMs))
      if (this.#stopped) return
      this.emit(
        'peers',
        live.filter((n) => n.id !== nodeId).map((n): PeerAddress => ({ id: n.id, address: n.address })),
      )
      this.emit('members', live)
    } catch (err) {
      if (!this.#stopped) this.#log.warn({ err }, 'cluster heartbeat failed; retrying at the next one')
    }
  }

  #iso(offsetMs: number): string {
    return new Date(this.#clock.now() + offsetMs).toISOString()
  }
}
