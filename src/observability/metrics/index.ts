import type { Logger } from '../logger.ts'
import type { AgentMetrics, AgentMetricsSource } from './agent-metrics.ts'
import type { ServerMetrics, ServerMetricsSource } from './server-metrics.ts'

export {
  NO_AGENT_METRICS,
  NO_GATEWAY_METRICS,
  NO_INGRESS_METRICS,
  type AgentMetricsSink,
  type ByteCountingSocket,
  type GatewayMetrics,
  type IngressMetrics,
} from './metrics-sink.ts'
export { MetricsListener, type CheckResult, type MetricsListenerDeps, type MetricsListenerOptions, type ReadinessCheck } from './metrics-listener.ts'
export type { AgentMetrics, AgentMetricsSource, ServerMetrics, ServerMetricsSource }

// prom-client is loaded only by a process that serves metrics (--metrics-listen): the CLI bundle
// keeps it in a chunk of its own, which an agent without metrics never reads (memory, start time).

/** The tunnel server's metrics, in a registry of their own. */
export async function createServerMetrics(source: ServerMetricsSource, deps: { log: Logger }): Promise<ServerMetrics> {
  const { ServerMetrics } = await import('./server-metrics.ts')
  return new ServerMetrics(source, deps)
}

/** An agent node's metrics, in a registry of their own. */
export async function createAgentMetrics(source: AgentMetricsSource): Promise<AgentMetrics> {
  const { AgentMetrics } = await import('./agent-metrics.ts')
  return new AgentMetrics(source)
}
