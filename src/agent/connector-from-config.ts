import { readFile } from 'node:fs/promises'
import type { AgentConfig } from '../config/agent-config.ts'
import type { Logger } from '../observability/index.ts'
import type { AgentMetricsSink } from '../observability/metrics/index.ts'
import { describeProxy } from '../transport/proxy-settings.ts'
import { VERSION } from '../version.ts'
import type { AgentConnectorOptions } from './connector/agent-connector.ts'

/** What every session of this node dials with, as the agent's config sets it; the key comes apart. */
export async function connectorFromConfig(
  config: Readonly<AgentConfig>,
  wiring: { nodeId: string; log: Logger; metrics: AgentMetricsSink | undefined; random?: (() => number) | undefined },
): Promise<Omit<AgentConnectorOptions, 'key'>> {
  const ca = config.caFile === undefined ? undefined : await readFile(config.caFile, 'utf8')
  if (config.proxy !== undefined) wiring.log.info(describeProxy(config.proxy), 'agent dials the tunnel server through an http connect proxy')
  return {
    upstream: config.upstream,
    nodeId: wiring.nodeId,
    instance: config.instance,
    agentVersion: VERSION,
    ca,
    proxy: config.proxy,
    connectTimeoutMs: config.connectTimeoutMs,
    upstreamConnectTimeoutMs: config.upstreamConnectTimeoutMs,
    maxStreams: config.maxStreams,
    drainTimeoutMs: config.drainTimeoutMs,
    backoff: { initialMs: config.reconnectInitialMs, maxMs: config.reconnectMaxMs, ...(wiring.random === undefined ? {} : { random: wiring.random }) },
    rejectedRetryMs: config.rejectedRetryMs,
    log: wiring.log,
    metrics: wiring.metrics,
  }
}
