import type { ClusterNode } from '../cluster/index.ts'
import type { ServerConfig } from '../config/server-config.ts'
import { TunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import type { IngressMetrics } from '../observability/metrics/index.ts'
import type { SessionRegistry } from './agent-gateway/session-registry.ts'
import type { AccessLog } from './ingress/access-log.ts'
import type { AccessPolicies } from './ingress/access-policies.ts'
import type { HostRouter } from './ingress/host-router.ts'
import { IngressServer } from './ingress/ingress-server.ts'
import { OncePerInterval } from './ingress/once-per-interval.ts'
import type { SourceLimits } from './ingress/source-limits.ts'
import { ReplicaForwarder } from './replica-forward/replica-forwarder.ts'
import type { TunnelService } from './tunnels/tunnel-service.ts'

export interface IngressWiring {
  registry: SessionRegistry
  router: HostRouter
  tunnels: Pick<TunnelService, 'describe'>
  access: AccessPolicies
  sourceLimits: SourceLimits
  accessLog: AccessLog | undefined
  metrics: IngressMetrics
  /** this replica's cluster node once it has started; undefined on a lone server */
  cluster(): ClusterNode | undefined
  log: Logger
}

/** The ingress as the server's config sets it; with a cluster, with the replica forwarder. */
export function ingressFromConfig(config: Readonly<ServerConfig>, wiring: IngressWiring): IngressServer {
  const { registry, tunnels, log } = wiring
  return new IngressServer({
    registry,
    router: wiring.router,
    describeTunnel: (id) => tunnels.describe(id),
    log: log.child({ component: 'ingress' }),
    limits: { maxHeadBytes: config.maxHeadBytes, maxHeaderCount: config.maxHeaderCount },
    timeouts: {
      headTimeoutMs: config.headTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      upgradedIdleTimeoutMs: config.upgradedIdleTimeoutMs,
      upstreamResponseTimeoutMs: config.upstreamResponseTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      bodyMinBytesPerSecond: config.bodyMinBytesPerSecond,
    },
    maxStreamsPerSession: config.maxStreamsPerSession,
    proto: 'http',
    access: wiring.access,
    metrics: wiring.metrics,
    unsolicitedWarnings: new OncePerInterval(60_000),
    // Replicas forward a caller to one that holds the tunnel when they hold none (decision 37).
    forwarder:
      config.cluster === undefined
        ? undefined
        : new ReplicaForwarder({
            registry,
            describeTunnel: (id) => tunnels.describe(id),
            openForward: (peerId) => {
              const cluster = wiring.cluster()
              if (cluster === undefined) return Promise.reject(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the cluster node is not started'))
              return cluster.openForward(peerId)
            },
            log: log.child({ component: 'replica-forward' }),
          }),
    sourceLimits: wiring.sourceLimits,
    accessLog: wiring.accessLog,
  })
}
