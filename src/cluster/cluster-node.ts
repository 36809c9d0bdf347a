import type { ClusterSettings } from '../config/cluster-config.ts'
import type { Logger } from '../observability/index.ts'
import { ClusterNodeRepository, SecurityPropertyRepository, type AgentEndpoint, type ClusterNodeKind, type ClusterNodeRecord, type Database } from '../store/index.ts'
import type { ReplicaEndpoint } from '../protocol/index.ts'
import { VERSION } from '../version.ts'
import { renderAuthStatsPrometheus } from './auth-stats-prometheus.ts'
import { ClusterAuthStats, type AuthStatsJson } from './auth-stats.ts'
import { ClusterBus, type ClusterBusOptions, type EventHandler, type ForwardAcceptor, type ForwardChannel } from './bus/cluster-bus.ts'
import { DEFAULT_MAX_BUS_FRAME_BYTES } from './bus/bus-messages.ts'
import { Membership } from './bus/membership.ts'
import type { PeerLinkInfo } from './bus/peer-link.ts'
import type { Clock } from './clock.ts'
import type { ClusterEventMap, ClusterTopic } from './cluster-events.ts'
import { ReplicaList } from './replica-list.ts'
import { ClusterKeySupplier, type KeyChangeEvent } from './key-supplier.ts'
import type { KeyRingState } from './key-ring.ts'
import { StatsReporter } from './stats-reporter.ts'

export interface ClusterNodeOptions extends ClusterSettings {
  nodeId: string
  kind: ClusterNodeKind
  /** largest bus frame payload, in bytes [1 MiB] */
  maxFrameBytes?: number
  /** on-demand key re-reads are spaced at least this far apart, in ms [2000] */
  keyRefreshMinIntervalMs?: number
  /** bus keepalive: PING after this much silence, in ms [heartbeat interval] */
  pingIntervalMs?: number
  /** unacknowledged events kept per peer [10000] */
  maxOutboxPerPeer?: number
}

/** What a node says about itself in its cluster_node row, and what `cluster status` shows. */
export interface ClusterNodeStatus {
  nodeId: string
  kind: ClusterNodeKind
  address: string
  version: string
  heartbeatIntervalMs: number
  key: Omit<KeyRingState, 'previousAcceptedUntil'> & { previousAcceptedUntil: string | null }
  links: PeerLinkInfo[]
  /** unacknowledged events per peer */
  backlog: Record<string, number>
  authStats: { server: AuthStatsJson; client: AuthStatsJson }
  /** bus frames refused for a failed MAC since start, per side */
  busFramesRefused: { server: number; client: number }
}

export interface ClusterNode {
  readonly nodeId: string
  readonly kind: ClusterNodeKind
  /** HOST:PORT peers dial */
  readonly address: string
  readonly listenAddress: { host: string; port: number }
  readonly stats: ClusterAuthStats
  readonly keys: ClusterKeySupplier
  publish<K extends ClusterTopic>(topic: K, data: ClusterEventMap[K]): void
  /** returns the unsubscribe function */
  subscribe<K extends ClusterTopic>(topic: K, handler: EventHandler<K>): () => void
  status(): ClusterNodeStatus
  /** the auth statistics in Prometheus text format (for issue 8's /metrics) */
  renderMetrics(): string
  /** one heartbeat and peer read now, instead of at the next interval */
  refreshMembership(): Promise<void>
  /** server replicas: where agents reach this one directly (written with the next heartbeat) */
  setAgentEndpoint(endpoint: AgentEndpoint | null): void
  /** live nodes of this kind that have an agent endpoint (this one included), by id */
  replicas(): ReplicaEndpoint[]
  /** calls back when replicas() changes; returns the unsubscribe function */
  onReplicasChanged(listener: (replicas: ReplicaEndpoint[]) => void): () => void
  /** takes the connections peers open to forward callers to this node (docs/scaling.md) */
  acceptForwarded(acceptor: ForwardAcceptor): void
  /** an authenticated connection to a live peer, to forward one caller connection over */
  openForward(peerId: string): Promise<ForwardChannel>
  close(): Promise<void>
}

/**
 * Starts one cluster node: key supplier (the key is loaded before the listener opens, so no
 * handshake ever runs without it), bus listener, membership row and heartbeats, statistics lines.
 * Closes in reverse: statistics, membership (the row goes, so peers stop dialling), key polling,
 * then the bus (dialers, pending handshakes, links). The caller closes the database afterwards.
 */
export async function startClusterNode(options: ClusterNodeOptions, deps: { database: Database; log: Logger; clock?: Clock }): Promise<ClusterNode> {
  const log = deps.log.child({ component: 'cluster', nodeId: options.nodeId })
  const clock = deps.clock
  const stats = new ClusterAuthStats(clock)
  const keys = new ClusterKeySupplier(
    {
      disabledAtStart: options.authDisabled,
      pollIntervalMs: options.keyPollMs,
      graceMs: options.keyGraceMs,
      warnIntervalMs: options.authWarnIntervalMs,
      ...(options.keyRefreshMinIntervalMs === undefined ? {} : { refreshMinIntervalMs: options.keyRefreshMinIntervalMs }),
    },
    { properties: new SecurityPropertyRepository(deps.database), log, ...(clock === undefined ? {} : { clock }) },
  )
  await keys.start()

  const bus = new ClusterBus(busOptions(options), { keys, stats, log })
  let listenAddress: { host: string; port: number }
  try {
    listenAddress = await bus.listen()
  } catch (err) {
    await keys.close()
    throw err
  }
  const address = options.advertise ?? `${listenAddress.host.includes(':') ? `[${listenAddress.host}]` : listenAddress.host}:${listenAddress.port}`

  const status = (): ClusterNodeStatus => statusOf(options, { address, keys, bus, stats })
  const membership = new Membership(
    { nodeId: options.nodeId, kind: options.kind, address, heartbeatIntervalMs: options.heartbeatIntervalMs, livenessMs: options.heartbeatIntervalMs * 3 },
    { nodes: new ClusterNodeRepository(deps.database), log, status, ...(clock === undefined ? {} : { clock }) },
  )
  try {
    await membership.join()
  } catch (err) {
    await bus.close()
    await keys.close()
    throw err
  }

  // A key change seen here is announced on the bus, so peers re-read the row now rather than at
  // their next poll; links whose key is no longer accepted are closed and redialled.
  keys.on('change', (change: KeyChangeEvent) => {
    bus.checkLinks()
    if (change.mode === 'enabled' || change.mode === 'disabled-at-run-time') bus.publish('key.changed', { kid: change.kid, mode: change.mode })
  })
  keys.on('previous-expired', () => bus.checkLinks())
  bus.subscribe('key.changed', () => keys.requestRefresh())
  membership.on('peers', (peers) => {
    bus.setPeers(peers)
    // Heartbeats double as the clock for grace expiry: a retired key's links close within one.
    bus.checkLinks()
  })
  const replicas = new ReplicaList(options.nodeId, { log })
  membership.on('members', (live: ClusterNodeRecord[]) => replicas.membersChanged(live))
  bus.on('link-up', (info: PeerLinkInfo) => replicas.linkUp(info.peerId))
  const reporter = new StatsReporter(stats, { intervalMs: options.statsIntervalMs }, { log })
  // Know the live peers before returning: an event published right after start must find them.
  await membership.beat()
  membership.start()
  log.info({ address, listen: `${listenAddress.host}:${listenAddress.port}`, kind: options.kind, authMode: keys.mode, kid: keys.state().kid }, 'cluster node started')

  let closing: Promise<void> | undefined
  return {
    nodeId: options.nodeId,
    kind: options.kind,
    address,
    listenAddress,
    stats,
    keys,
    publish: (topic, data) => bus.publish(topic, data),
    subscribe: (topic, handler) => bus.subscribe(topic, handler),
    status,
    renderMetrics: () => renderAuthStatsPrometheus(stats, { node: options.nodeId }),
    refreshMembership: () => membership.beat(),
    setAgentEndpoint: (endpoint) => membership.setAgentEndpoint(endpoint),
    replicas: () => replicas.current,
    acceptForwarded: (acceptor) => bus.acceptForwarded(acceptor),
    openForward: (peerId) => bus.openForward(peerId),
    onReplicasChanged: (listener) => replicas.onChange(listener),
    close() {
      closing ??= (async () => {
        reporter.close()
        await membership.leave()
        await keys.close()
        await bus.close()
        log.info('cluster node stopped')
      })()
      return closing
    },
  }
}

/** The bus as the cluster settings set it: keepalive on the heartbeat, redial no slower than it. */
function busOptions(options: ClusterNodeOptions): ClusterBusOptions {
  const pingIntervalMs = options.pingIntervalMs ?? options.heartbeatIntervalMs
  return {
    nodeId: options.nodeId,
    listen: options.listen,
    authTimeoutMs: options.authTimeoutMs,
    maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_BUS_FRAME_BYTES,
    maxPendingHandshakes: 256,
    maxOutboxPerPeer: options.maxOutboxPerPeer ?? 10_000,
    pingIntervalMs,
    pingTimeoutMs: pingIntervalMs * 3,
    redial: { initialMs: 200, maxMs: Math.max(1000, Math.min(10_000, options.heartbeatIntervalMs)) },
  }
}

/** What the node says about itself in its cluster_node row and in `cluster status`. */
function statusOf(options: ClusterNodeOptions, parts: { address: string; keys: ClusterKeySupplier; bus: ClusterBus; stats: ClusterAuthStats }): ClusterNodeStatus {
  const { keys, bus, stats } = parts
  const k = keys.state()
  return {
    nodeId: options.nodeId,
    kind: options.kind,
    address: parts.address,
    version: VERSION,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    key: { ...k, previousAcceptedUntil: k.previousAcceptedUntil === null ? null : new Date(k.previousAcceptedUntil).toISOString() },
    links: bus.links(),
    backlog: bus.backlog(),
    authStats: { server: stats.server.total(), client: stats.client.total() },
    busFramesRefused: stats.busFramesRefused(),
  }
}
