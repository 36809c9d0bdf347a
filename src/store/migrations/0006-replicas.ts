import type { Kysely, Migration } from 'kysely'

/**
 * Tunnel server replicas (docs/scaling.md): each `cluster_node` row of a server replica says where
 * agents reach it directly (`agent_url`, and `agent_pin` when its certificate is self-signed), and
 * `tunnel_presence` says which replicas hold at least one live session of a tunnel, so any replica
 * can tell CONNECTED from UNAVAILABLE for every tunnel.
 */
export function replicasMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('cluster_node').addColumn('agent_url', 'text').execute()
      await db.schema.alterTable('cluster_node').addColumn('agent_pin', 'text').execute()
      await db.schema
        .createTable('tunnel_presence')
        // No foreign key to tunnel: a delete on one replica must not wait for another's row to go.
        .addColumn('tunnel_id', 'text', (c) => c.notNull())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('since', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tunnel_presence_pk', ['tunnel_id', 'node_id'])
        .execute()
      await db.schema.createIndex('tunnel_presence_node_idx').on('tunnel_presence').column('node_id').execute()
    },
  }
}
