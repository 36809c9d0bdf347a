import type { Kysely, Migration } from 'kysely'

/**
 * The on-prem instance's own state: `instance_tunnel` (its one security key) and `instance_node`
 * (every agent node of the instance and what it last reported about its tunnel).
 */
export function instanceMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('instance_tunnel')
        // Always 'instance': an instance holds one tunnel, and a constant primary key is what lets
        // "only one key" be decided atomically by the database (on either dialect) rather than by a
        // read-then-insert that two nodes could both pass.
        .addColumn('slot', 'text', (c) => c.primaryKey())
        .addColumn('security_key', 'text', (c) => c.notNull())
        .addColumn('tunnel_id', 'text', (c) => c.notNull())
        .addColumn('server_url', 'text', (c) => c.notNull())
        .addColumn('added_at', 'text', (c) => c.notNull())
        .addColumn('added_by', 'text')
        // Only the server knows these; they stay null until a node has connected with the key.
        .addColumn('tunnel_name', 'text')
        .addColumn('connected_to', 'text')
        .addColumn('application_link_url', 'text')
        .execute()

      await db.schema
        .createTable('instance_node')
        .addColumn('node_id', 'text', (c) => c.primaryKey())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('heartbeat_at', 'text', (c) => c.notNull())
        // Each node says how often it beats, so a reader in another process (key status) knows
        // when silence means the node is gone.
        .addColumn('heartbeat_ms', 'integer', (c) => c.notNull())
        // Distinguishes a node that shut down cleanly from one that merely went silent.
        .addColumn('stopped_at', 'text')
        // Null while the instance has no key: the status then describes no tunnel at all.
        .addColumn('tunnel_id', 'text')
        .addColumn('status', 'text')
        .addColumn('reason', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('code', 'text')
        .addColumn('status_since', 'text', (c) => c.notNull())
        // integer (not bigint): both drivers hand it back as a JS number.
        .addColumn('sessions', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('sessions_wanted', 'integer', (c) => c.notNull().defaultTo(0))
        .execute()
    },
  }
}
