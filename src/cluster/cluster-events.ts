import { z } from 'zod'

/**
 * Every event the cluster bus carries, by topic. A receiver validates each event against its
 * schema before any subscriber sees it; events of topics it does not know (a newer peer) are
 * acknowledged and dropped.
 */
export interface ClusterEventMap {
  /** a tunnel was created or deleted on one server replica: others drop sessions of a deleted one */
  'tunnel.changed': { tunnelId: string; change: 'created' | 'deleted' }
  /** a node saw the cluster key change (never the key: its public id): others re-read it now */
  'key.changed': { kid: string | null; mode: 'enabled' | 'disabled-at-run-time' }
  /** a node's own status changed (agent nodes: their session to the tunnel server) */
  'node.status': { nodeId: string; status: string; reason: string }
  /** a tunnel's linked products changed on one server replica: others reload its access policy now */
  'products.changed': { tunnelId: string }
  /** an admin API token was created or revoked on one server replica: others drop what they cached of it */
  'token.changed': { tokenId: string; change: 'created' | 'revoked' }
}

export type ClusterTopic = keyof ClusterEventMap

export const clusterEventSchemas: { [K in ClusterTopic]: z.ZodType<ClusterEventMap[K]> } = {
  'tunnel.changed': z.object({ tunnelId: z.string().min(1).max(100), change: z.enum(['created', 'deleted']) }).strict(),
  'key.changed': z.object({ kid: z.string().regex(/^[0-9a-f]{16}$/).nullable(), mode: z.enum(['enabled', 'disabled-at-run-time']) }).strict(),
  'node.status': z.object({ nodeId: z.string().min(1).max(64), status: z.string().min(1).max(40), reason: z.string().max(500) }).strict(),
  'products.changed': z.object({ tunnelId: z.string().min(1).max(100) }).strict(),
  'token.changed': z.object({ tokenId: z.string().min(1).max(100), change: z.enum(['created', 'revoked']) }).strict(),
}

export function isClusterTopic(topic: string): topic is ClusterTopic {
  return Object.hasOwn(clusterEventSchemas, topic)
}
