import { readFile } from 'node:fs/promises'
import type { AgentConfig } from '../config/agent-config.ts'
import { silentLogger, type Logger } from '../observability/index.ts'
import { AgentConnector } from './connector/agent-connector.ts'
import type { AgentStatus } from './connector/agent-status.ts'
import { resolveNodeId } from './node-identity.ts'
import { VERSION } from '../version.ts'

export const AGENT_VERSION = VERSION

export interface TunnelAgent {
  readonly nodeId: string
  readonly status: AgentStatus
  readonly connector: AgentConnector
  /** resolves on the first status that satisfies the predicate */
  waitFor(predicate: (s: AgentStatus) => boolean, timeoutMs?: number): Promise<AgentStatus>
  close(): Promise<void>
}

/** Composition root of `apptunnel agent` (one node, one session; clusters come with the cluster work). */
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
  connector.start()
  return {
    nodeId,
    get status() {
      return connector.status
    },
    connector,
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
    close: () => connector.close(),
  }
}
