import type { ClusterNode } from '../cluster/index.ts'
import type { AgentConfig } from '../config/agent-config.ts'
import { resolveNodeId } from '../config/node-identity.ts'
import { silentLogger, type Logger, type ProgressOutput } from '../observability/index.ts'
import { MetricsListener, createAgentMetrics } from '../observability/metrics/index.ts'
import type { Database } from '../store/index.ts'
import { VERSION } from '../version.ts'
import { agentClose } from './agent-drain.ts'
import { agentReadinessChecks } from './agent-readiness.ts'
import { connectorFromConfig } from './connector-from-config.ts'
import type { AgentStatusName } from './connector/agent-status.ts'
import { NodeSessions } from './connector/node-sessions.ts'
import type { OnpremConsole } from './console/onprem-console.ts'
import type { InstanceNode } from './instance/instance-node.ts'
import { StatusFeed, type AgentNodeStatus } from './status-feed.ts'

export const AGENT_VERSION = VERSION

export type { AgentNodeStatus }

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
  /** GOAWAY on every session, lets relays in flight finish (up to drainTimeoutMs), records the node stopped, closes everything; idempotent */
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
  // Only with metricsListen: otherwise the data path counts into no-op sinks and prom-client stays unloaded.
  const metrics =
    config.metricsListen === undefined
      ? undefined
      : await createAgentMetrics({ status: () => current(), relayStreams: () => currentSessions()?.activeRelays ?? 0, clusterMetrics: () => cluster?.renderMetrics() ?? '' })
  const connector = await connectorFromConfig(config, { nodeId, log, metrics, random: deps.random })
  let current: () => AgentNodeStatus
  let currentSessions: () => NodeSessions | undefined
  const feed = new StatusFeed(() => current())
  let instance: InstanceNode | undefined
  let database: Database | undefined
  let cluster: ClusterNode | undefined
  let instanceConsole: OnpremConsole | undefined
  try {
    if (config.database === undefined) {
      const sessions = new NodeSessions({ ...connector, key: config.key! }, { sessions: config.sessions, connectGraceMs: config.connectGraceMs, maxReplicas: config.replicas })
      current = () => sessions.status
      currentSessions = () => sessions
      sessions.on('status', () => feed.emit())
      sessions.start()
    } else {
      const { startInstanceMember } = await import('./instance/instance-member.ts')
      const member = await startInstanceMember(config, config.database, connector, { nodeId, version: AGENT_VERSION, log, terminal: deps.terminal })
      ;({ database, node: instance, cluster, console: instanceConsole } = member)
      current = member.status
      currentSessions = () => member.node.sessions
      member.node.on('status', () => feed.emit())
    }
  } catch (err) {
    await cluster?.close()
    await instance?.close()
    await database?.close()
    throw err
  }

  let metricsListener: MetricsListener | undefined
  const close = agentClose(
    { sessions: () => currentSessions(), instance, instanceConsole, metricsListener: () => metricsListener, cluster, database },
    { drainTimeoutMs: config.drainTimeoutMs, log, terminal: deps.terminal },
  )
  if (metrics !== undefined && config.metricsListen !== undefined) {
    try {
      metricsListener = await MetricsListener.start(
        config.metricsListen,
        { render: () => metrics.render(), contentType: metrics.contentType, checks: agentReadinessChecks({ status: () => current(), database }), log: log.child({ component: 'metrics' }) },
        { headTimeoutMs: config.metricsHeadTimeoutMs, requestTimeoutMs: config.metricsRequestTimeoutMs },
      )
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
    instance, cluster, instanceConsole, metricsAddress: metricsListener?.address,
    onStatus: (listener) => feed.onStatus(listener),
    waitFor: (predicate, timeoutMs) => feed.waitFor(predicate, timeoutMs),
    close,
  }
}

export type { AgentStatusName }
