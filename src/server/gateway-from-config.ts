import type { ClusterNode } from '../cluster/index.ts'
import type { ServerConfig } from '../config/server-config.ts'
import type { Logger } from '../observability/index.ts'
import type { GatewayMetrics } from '../observability/metrics/index.ts'
import type { TunnelRepository } from '../store/index.ts'
import { AgentGateway } from './agent-gateway/agent-gateway.ts'
import type { SessionRegistry } from './agent-gateway/session-registry.ts'

export interface GatewayWiring {
  registry: SessionRegistry
  tunnels: TunnelRepository
  /** the org of this server: its tunnels show its name to their agents */
  org: { orgId: string; orgName: string }
  applicationLinkUrl(tunnelId: string): string
  /** this replica's cluster node once it has started; undefined on a lone server */
  cluster(): ClusterNode | undefined
  metrics: GatewayMetrics
  log: Logger
  now?: (() => number) | undefined
}

/** The agent gateway as the server's config sets it, knowing every tunnel in the database. */
export async function gatewayFromConfig(config: Readonly<ServerConfig>, wiring: GatewayWiring): Promise<AgentGateway> {
  const { tunnels, org } = wiring
  const gateway = new AgentGateway(
    {
      pingIntervalMs: config.pingIntervalMs,
      pingTimeoutMs: config.pingTimeoutMs,
      drainTimeoutMs: config.drainTimeoutMs,
      maxStreamsPerSession: config.maxStreamsPerSession,
      maxSessionsPerTunnel: config.maxSessionsPerTunnel,
      sessionSetupTimeoutMs: 10_000,
      ...(wiring.now === undefined ? {} : { now: wiring.now }),
    },
    {
      registry: wiring.registry,
      log: wiring.log,
      metrics: wiring.metrics,
      replicas: () => {
        const cluster = wiring.cluster()
        return cluster === undefined ? undefined : { self: cluster.nodeId, replicas: cluster.replicas() }
      },
      findTunnel: async (id) => {
        const t = await tunnels.findById(id)
        if (t === undefined) return undefined
        return { id: t.id, name: t.name, secretHash: t.secretHash, orgName: t.orgId === org.orgId ? org.orgName : t.orgId, applicationLinkUrl: wiring.applicationLinkUrl(t.id) }
      },
    },
  )
  gateway.knowTunnels(await tunnels.listIds())
  return gateway
}
