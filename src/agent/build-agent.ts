import { readFile } from 'node:fs/promises'
import type { ClusterNode } from '../cluster/index.ts'
import type { AgentConfig } from '../config/agent-config.ts'
import { silentLogger, type Logger } from '../observability/index.ts'
import { AgentConnector } from './connector/agent-connector.ts'
import type { AgentStatus } from './connector/agent-status.ts'
import { resolveNodeId } from '../config/node-identity.ts'
import { VERSION } from '../version.ts'

export const AGENT_VERSION = VERSION

export interface TunnelAgent {
  readonly nodeId: string
  readonly status: AgentStatus
  readonly connector: AgentConnector
  /** this node's cluster node, when started with clusterListen (nodes of one instance share its database) */
  readonly cluster: ClusterNode | undefined
  /** resolves on the first status that satisfies the predicate */
  waitFor(predicate: (s: AgentStatus) => boolean, timeoutMs?: number): Promise<AgentStatus>
  close(): Promise<void>
}

/** Composition root of `apptunnel agent` (one node, one session; with clusterListen it also joins its instance's cluster bus). */
export async function startAgent(
  config: Readonly<AgentConfig>,
  deps: { log?: Logger; random?: () => number } = {},
): Promise<TunnelAgent> {
  const log = deps.log ?? silentLogger()
  const nodeId = await resolveNodeId({ nodeId: config.nodeId, dataDir: config.dataDir })
  const ca = config.caFile === undefined ? undefined : await readFile(config.caFile, 'utf8')
  const connector = new AgentConnector({
    key: config.key,
    upstream: config.upstream,
    nodeId,
    instance: config.instance,
    agentVersion: AGENT_VERSION,
    ca,
    connectTimeoutMs: config.connectTimeoutMs,
    upstreamConnectTimeoutMs: config.upstreamConnectTimeoutMs,
    maxStreams: config.maxStreams,
    drainTimeoutMs: config.drainTimeoutMs,
    backoff: { initialMs: config.reconnectInitialMs, maxMs: config.reconnectMaxMs, ...(deps.random === undefined ? {} : { random: deps.random }) },
    rejectedRetryMs: config.rejectedRetryMs,
    log,
  })
  // Cluster bus: nodes of one on-prem instance tell each other their session status. Loaded only
  // when configured, so a single agent never carries the store or the bus.
  let cluster: ClusterNode | undefined
  let closeDatabase = async (): Promise<void> => {}
  if (config.cluster !== undefined && config.database !== undefined) {
    const [{ openDatabase }, { startClusterNode }] = await Promise.all([import('../store/index.ts'), import('../cluster/index.ts')])
    const database = await openDatabase(config.database)
    closeDatabase = () => database.close()
    try {
      cluster = await startClusterNode({ ...config.cluster, nodeId, kind: 'agent' }, { database, log })
    } catch (err) {
      await database.close()
      throw err
    }
    const node = cluster
    connector.on('status', (st: AgentStatus) => node.publish('node.status', { nodeId, status: st.status, reason: st.reason.slice(0, 500) }))
    node.subscribe('node.status', (e) => log.debug({ peer: e.nodeId, status: e.status, reason: e.reason }, 'cluster peer status'))
  }
  connector.start()
  return {
    nodeId,
    get status() {
      return connector.status
    },
    connector,
    cluster,
    waitFor(predicate, timeoutMs = 10_000) {
      if (predicate(connector.status)) return Promise.resolve(connector.status)
      return new Promise((resolve, reject) => {
        const onStatus = (s: AgentStatus): void => {
          if (!predicate(s)) return
          clearTimeout(timer)
          connector.off('status', onStatus)
          resolve(s)
        }
        const timer = setTimeout(() => {
          connector.off('status', onStatus)
          reject(new Error(`agent status did not match within ${timeoutMs} ms (now ${connector.status.status}: ${connector.status.reason})`))
        }, timeoutMs)
        connector.on('status', onStatus)
      })
    },
    close: async () => {
      await connector.close()
      await cluster?.close()
      await closeDatabase()
    },
  }
}
