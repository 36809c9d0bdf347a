import type { ClusterNode } from '../cluster/index.ts'
import { TunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import type { TunnelPresenceRepository } from '../store/index.ts'
import type { AgentGateway } from './agent-gateway/agent-gateway.ts'
import type { SessionRegistry } from './agent-gateway/session-registry.ts'
import type { ApiTokenService } from './admin-api/api-token-service.ts'
import type { AccessPolicies } from './ingress/access-policies.ts'
import type { IngressServer } from './ingress/ingress-server.ts'
import { acceptForwardedConnection } from './replica-forward/forward-acceptor.ts'

export interface ClusterSyncDeps {
  node: Pick<ClusterNode, 'nodeId' | 'subscribe' | 'acceptForwarded' | 'onReplicasChanged'>
  registry: SessionRegistry
  gateway: Pick<AgentGateway, 'tunnelChanged'>
  apiTokens: Pick<ApiTokenService, 'tokenChanged'>
  access: Pick<AccessPolicies, 'reloadTunnel'>
  ingress: Pick<IngressServer, 'acceptForwarded' | 'listening'>
  presence: Pick<TunnelPresenceRepository, 'clearNode'>
  log: Logger
  /** a forwarded connection's header must arrive within this time */
  forwardHeadTimeoutMs: number
}

/**
 * What a server replica does with what the other replicas tell it over the cluster bus, with no
 * polling: a tunnel deleted elsewhere ends its sessions here, a token or linked product changed
 * elsewhere is re-read here, callers forwarded by another replica are served here, and the agents
 * connected here learn when the list of replicas changes. Also clears what a crash of this replica
 * left in `tunnel_presence`; `close()` clears it again on the way out.
 */
export async function startClusterSync(deps: ClusterSyncDeps): Promise<{ close(): Promise<void> }> {
  const { node, registry, log } = deps
  node.subscribe('tunnel.changed', (e, meta) => {
    // The cached record goes first: a connect checked after this must read the database.
    deps.gateway.tunnelChanged(e.tunnelId, e.change)
    if (e.change !== 'deleted') return
    log.info({ tunnelId: e.tunnelId, from: meta.from }, 'tunnel deleted on another replica; ending its sessions here')
    registry.revokeTunnel(e.tunnelId, new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', 'tunnel deleted'))
  })
  node.subscribe('token.changed', (e, meta) => {
    if (e.change === 'revoked') log.info({ tokenId: e.tokenId, from: meta.from }, 'API token revoked on another replica; dropping it here')
    deps.apiTokens.tokenChanged(e.tokenId, e.change)
  })
  node.subscribe('products.changed', (e) => {
    deps.access.reloadTunnel(e.tunnelId).catch((err: unknown) => log.warn({ err, tunnelId: e.tunnelId }, 'could not reload linked products'))
  })
  node.acceptForwarded((socket, peer) =>
    acceptForwardedConnection(socket, peer, { ingress: deps.ingress, log: log.child({ component: 'replica-forward' }), timeoutMs: deps.forwardHeadTimeoutMs }),
  )
  // What a crash of this replica left in tunnel_presence is not true any more.
  await deps.presence.clearNode(node.nodeId)
  // Agents keep sessions to every replica: tell the connected ones when the list changes.
  node.onReplicasChanged((replicas) => {
    log.info({ replicas: replicas.map((r) => r.id) }, 'replicas changed; telling the connected agents')
    for (const s of registry.all()) s.announceReplicas(node.nodeId, replicas)
  })
  return {
    close: () => deps.presence.clearNode(node.nodeId).catch((err: unknown) => log.warn({ err }, 'could not clear this replica from tunnel_presence')),
  }
}
