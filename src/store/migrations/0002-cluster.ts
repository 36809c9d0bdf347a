import type { Kysely, Migration } from 'kysely'

/**
 * The cluster's shared state: `security_property` (named secrets, such as the cluster
 * authentication key under `cluster.auth.secret.key`) and `cluster_node` (the membership list:
 * every node's bus address and heartbeat, plus a JSON status it refreshes with each heartbeat).
 */
export function clusterMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('security_property')
        .addColumn('property_key', 'text', (c) => c.primaryKey())
        // '' is meaningful (an operator disabled what the property enables), so NOT NULL.
        .addColumn('property_value', 'text', (c) => c.notNull())
        .execute()

      await db.schema
        .createTable('cluster_node')
        .addColumn('id', 'text', (c) => c.primaryKey())
        // 'server' (tunnel server replicas) or 'agent' (on-prem nodes of one instance): nodes only
        // mesh with their own kind, so one database can hold both without crossing them.
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('heartbeat_at', 'text', (c) => c.notNull())
        .addColumn('status', 'text')
        .execute()
      await db.schema.createIndex('cluster_node_kind_heartbeat_idx').on('cluster_node').columns(['kind', 'heartbeat_at']).execute()
    },
  }
}
