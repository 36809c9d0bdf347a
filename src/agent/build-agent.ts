import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import type { ClusterNode } from '../cluster/index.ts'
import type { AgentConfig } from '../config/agent-config.ts'
import { TerminalProgress, describeDrain, describeMigration, silentLogger, type Logger, type ProgressOutput } from '../observability/index.ts'
import { MetricsListener, createAgentMetrics } from '../observability/metrics/index.ts'
import type { Database } from '../store/index.ts'
import type { AgentConnectorOptions } from './connector/agent-connector.ts'
import type { AgentStatusName } from './connector/agent-status.ts'
import { NodeSessions, type NodeStatus } from './connector/node-sessions.ts'
import type { InstanceNode } from './instance/instance-node.ts'
import type { OnpremConsole } from './console/onprem-console.ts'
import { resolveNodeId } from '../config/node-identity.ts'
import { describeProxy } from '../transport/proxy-settings.ts'
import { VERSION } from '../version.ts'

export const AGENT_VERSION = VERSION

/** A node's status; `status` is null while its instance has no key. */
export type AgentNodeStatus = NodeStatus | { status: null; reason: string; code?: undefined; since: string; sessions: 0; sessionsWanted: 0 }

export interface TunnelAgent {
  readonly nodeId: string
  readonly status: AgentNodeStatus
  /** the sessions for the current key (undefined while an instance has no key) */
  readonly sessions: NodeSessions | undefined
  /** this node of the on-prem instance, when started with a database */
  readonly instance: InstanceNode | undefined
  /** this node's cluster node, when started with clusterListen (nodes of one instance share its database) */
  readonly cluster: ClusterNode | undefined
  /** the on-prem admin console of this node, when started with consoleListen */
  readonly instanceConsole: OnpremConsole | undefined
  /** the plain-HTTP /metrics, /healthz and /readyz listener, when started with metricsListen */
  readonly metricsAddress: { host: string; port: number } | undefined
  /** calls back on every status change; returns the function that stops it */
  onStatus(listener: (s: AgentNodeStatus) => void): () => void
  /** resolves on the first status that satisfies the predicate */
  waitFor(predicate: (s: AgentNodeStatus) => boolean, timeoutMs?: number): Promise<AgentNodeStatus>
  /** GOAWAY on every session, lets relays in flight finish (up to drainTimeoutMs), records the node stopped, closes everything */
  close(): Promise<void>
}

export interface AgentDeps {
  log?: Logger
  random?: () => number
  /** where migrations and the drain show their progress (the CLI passes stderr); only a TTY shows it */
  terminal?: ProgressOutput | undefined
}

/**
 * Composition root of `apptunnel agent`. Without a database the node runs `sessions` sessions for
 * the key it was given. With one it is a node of an on-prem instance: the key comes from the
 * instance database (a --key given too is added there first), and the node reports its status
 * there. With clusterListen it also joins its instance's cluster bus.
 */
export async function startAgent(config: Readonly<AgentConfig>, deps: AgentDeps = {}): Promise<TunnelAgent> {
  const log = deps.log ?? silentLogger()
  const nodeId = await resolveNodeId({ nodeId: config.nodeId, dataDir: config.dataDir })
  const ca = config.caFile === undefined ? undefined : await readFile(config.caFile, 'utf8')
  // Only with metricsListen: otherwise the data path counts into no-op sinks and prom-client stays unloaded.
  const metrics =
    config.metricsListen === undefined
      ? undefined
      : await createAgentMetrics({
          status: () => current(),
          relayStreams: () => currentSessions()?.activeRelays ?? 0,
          clusterMetrics: () => cluster?.renderMetrics() ?? '',
        })
  const connector: Omit<AgentConnectorOptions, 'key'> = {
    upstream: config.upstream,
    nodeId,
    instance: config.instance,
    agentVersion: AGENT_VERSION,
    ca,
    proxy: config.proxy,
    connectTimeoutMs: config.connectTimeoutMs,
    upstreamConnectTimeoutMs: config.upstreamConnectTimeoutMs,
    maxStreams: config.maxStreams,
    drainTimeoutMs: config.drainTimeoutMs,
    backoff: { initialMs: config.reconnectInitialMs, maxMs: config.reconnectMaxMs, ...(deps.random === undefined ? {} : { random: deps.random }) },
    rejectedRetryMs: config.rejectedRetryMs,
    log,
    metrics,
  }
  if (config.proxy !== undefined) log.info(describeProxy(config.proxy), 'agent dials the tunnel server through an http connect proxy')
  const listeners = new Set<(s: AgentNodeStatus) => void>()
  const noKey = { status: null, reason: 'waiting for a security key', since: new Date().toISOString(), sessions: 0, sessionsWanted: 0 } as const
  let current: () => AgentNodeStatus
  let currentSessions: () => NodeSessions | undefined
  let instance: InstanceNode | undefined
  let database: Database | undefined
  let cluster: ClusterNode | undefined
  let instanceConsole: OnpremConsole | undefined
  const emit = (): void => {
    const st = current()
    for (const l of [...listeners]) l(st)
  }

  try {
    if (config.database === undefined) {
      const sessions = new NodeSessions({ ...connector, key: config.key! }, { sessions: config.sessions, connectGraceMs: config.connectGraceMs, maxReplicas: config.replicas })
      current = () => sessions.status
      currentSessions = () => sessions
      sessions.on('status', emit)
      sessions.start()
    } else {
      // Loaded only with a database, so a single agent never carries the store.
      const [{ openDatabase }, { InstanceNode }, { InstanceAdmin }, { KeySealer }] = await Promise.all([
        import('../store/index.ts'),
        import('./instance/instance-node.ts'),
        import('./instance/instance-admin.ts'),
        import('./instance/key-sealer.ts'),
      ])
      const sealer = config.keyEncryptionFile === undefined ? undefined : await KeySealer.fromFile(config.keyEncryptionFile)
      const migrating = new TerminalProgress({ out: deps.terminal })
      database = await openDatabase(config.database, { onMigration: (step) => migrating.update(describeMigration(step)) }).finally(() => migrating.done())
      if (database.migrated.length > 0) log.info({ migrations: database.migrated, database: database.dialect }, 'database migrated')
      if (config.keyText !== undefined) await new InstanceAdmin(database, { sealer }).addKey(config.keyText, `agent ${nodeId} (--key)`)
      const node = new InstanceNode(
        {
          nodeId,
          address: hostname(),
          version: AGENT_VERSION,
          sessions: config.sessions,
          maxReplicas: config.replicas,
          connectGraceMs: config.connectGraceMs,
          keyPollMs: config.keyPollMs,
          heartbeatMs: config.nodeHeartbeatMs,
          connector,
          sealer,
        },
        { database, log },
      )
      instance = node
      current = () => node.status ?? noKey
      currentSessions = () => node.sessions
      node.on('status', emit)
      await node.start()
      if (config.cluster !== undefined) {
        const { startClusterNode } = await import('../cluster/index.ts')
        cluster = await startClusterNode({ ...config.cluster, nodeId, kind: 'agent' }, { database, log })
        const bus = cluster
        listeners.add((st) => bus.publish('node.status', { nodeId, status: st.status ?? 'NONE', reason: st.reason.slice(0, 500) }))
        bus.subscribe('node.status', (e) => log.debug({ peer: e.nodeId, status: e.status, reason: e.reason }, 'cluster peer status'))
      }
      if (config.console !== undefined) {
        const { startOnpremConsole } = await import('./console/onprem-console.ts')
        instanceConsole = await startOnpremConsole(config.console, { database, admin: new InstanceAdmin(database, { sealer }), log, node: { id: nodeId, upstream: `${config.upstream.host}:${config.upstream.port}`, database: config.database } })
      }
    }
  } catch (err) {
    await cluster?.close()
    await instance?.close()
    await database?.close()
    throw err
  }

  let metricsListener: MetricsListener | undefined
  const close = async (): Promise<void> => {
    // A caller's connection is one relay; a session still draining is one that has relays left
    // (close() ends a session without any at once).
    const left = () => {
      const connectors = currentSessions()?.connectors ?? []
      return { connections: connectors.reduce((n, c) => n + c.activeRelays, 0), sessions: connectors.filter((c) => c.activeRelays > 0).length }
    }
    const startedAt = Date.now()
    log.info({ ...left(), drainTimeoutMs: config.drainTimeoutMs }, 'draining')
    const draining = new TerminalProgress({ out: deps.terminal })
    draining.follow((elapsedMs) => describeDrain(left(), elapsedMs))
    try {
      await instanceConsole?.close()
      if (instance !== undefined) await instance.close()
      else await currentSessions()?.close()
    } finally {
      draining.done()
    }
    log.info({ elapsedMs: Date.now() - startedAt }, 'drained')
    await metricsListener?.close()
    await cluster?.close()
    await database?.close()
  }
  if (metrics !== undefined && config.metricsListen !== undefined) {
    const db = database
    try {
      metricsListener = await MetricsListener.start(config.metricsListen, {
        render: () => metrics.render(),
        contentType: metrics.contentType,
        checks: [
          {
            name: 'sessions',
            check: () => {
              const st = current()
              if (st.sessions === 0) throw new Error(`no session connected to the tunnel server (${st.status ?? 'no key'}: ${st.reason})`)
            },
          },
          ...(db === undefined ? [] : [{ name: 'database', check: () => db.ping() }]),
        ],
        log: log.child({ component: 'metrics' }),
      }, { headTimeoutMs: config.metricsHeadTimeoutMs, requestTimeoutMs: config.metricsRequestTimeoutMs })
    } catch (err) {
      await close()
      throw err
    }
  }

  return {
    nodeId,
    get status() {
      return current()
    },
    get sessions() {
      return currentSessions()
    },
    instance,
    cluster,
    instanceConsole,
    metricsAddress: metricsListener?.address,
    onStatus(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    waitFor(predicate, timeoutMs = 10_000) {
      if (predicate(current())) return Promise.resolve(current())
      return new Promise((resolve, reject) => {
        const onStatus = (s: AgentNodeStatus): void => {
          if (!predicate(s)) return
          clearTimeout(timer)
          listeners.delete(onStatus)
          resolve(s)
        }
        const timer = setTimeout(() => {
          listeners.delete(onStatus)
          const now = current()
          reject(new Error(`agent status did not match within ${timeoutMs} ms (now ${now.status ?? 'no key'}: ${now.reason})`))
        }, timeoutMs)
        listeners.add(onStatus)
      })
    },
    close,
  }
}

export type { AgentStatusName }
