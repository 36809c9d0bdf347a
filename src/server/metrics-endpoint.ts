import type { ClusterNode } from '../cluster/index.ts'
import type { ServerConfig } from '../config/server-config.ts'
import type { Logger } from '../observability/index.ts'
import { MetricsListener, createServerMetrics, type ServerMetrics, type ServerMetricsSource } from '../observability/metrics/index.ts'
import type { Database } from '../store/index.ts'
import type { SessionRegistry } from './agent-gateway/session-registry.ts'
import { serverReadinessChecks } from './server-readiness.ts'

/** Only with metricsListen: otherwise the data path counts into no-op sinks and prom-client stays unloaded. */
export async function serverMetricsIfListening(config: Pick<Readonly<ServerConfig>, 'metricsListen'>, source: ServerMetricsSource, log: Logger): Promise<ServerMetrics | undefined> {
  return config.metricsListen === undefined ? undefined : await createServerMetrics(source, { log })
}

export interface MetricsEndpointWiring {
  metrics: ServerMetrics | undefined
  database: Pick<Database, 'ping'>
  https: { readonly listening: boolean }
  ingress: { readonly listening: boolean }
  registry: SessionRegistry
  /** with replicas; undefined on a lone server */
  cluster: ClusterNode | undefined
  /** for each tunnel some other live replica holds a session of: those replicas */
  heldByPeers(): Promise<ReadonlyMap<string, readonly string[]>>
  /** when the server started, on performance.now() */
  startedAtMs: number
  log: Logger
}

/**
 * The plain-HTTP /metrics, /healthz and /readyz listener, when the server has metrics. Started
 * before the other listeners, so /readyz can say they are not yet listening.
 */
export async function startMetricsEndpoint(config: Readonly<ServerConfig>, wiring: MetricsEndpointWiring): Promise<MetricsListener | undefined> {
  const { metrics, cluster, registry } = wiring
  if (metrics === undefined || config.metricsListen === undefined) return undefined
  const checks = serverReadinessChecks({
    database: wiring.database,
    https: wiring.https,
    ingress: wiring.ingress,
    replica:
      cluster === undefined
        ? undefined
        : {
            ownTunnels: () => new Set([...registry.all()].map((s) => s.info.tunnelId)),
            heldByPeers: () => wiring.heldByPeers(),
            keyedLinks: () => cluster.status().links.filter((l) => l.kid !== null).map((l) => l.peerId),
            uptimeMs: () => performance.now() - wiring.startedAtMs,
            graceMs: config.replicaReadyGraceMs,
          },
  })
  return MetricsListener.start(
    config.metricsListen,
    { render: () => metrics.render(), contentType: metrics.contentType, checks, log: wiring.log.child({ component: 'metrics' }) },
    { headTimeoutMs: config.metricsHeadTimeoutMs, requestTimeoutMs: config.metricsRequestTimeoutMs },
  )
}
