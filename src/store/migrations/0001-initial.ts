import type { Kysely, Migration } from 'kysely'
import type { StoreDialect } from '../store-dialect.ts'

/** Creates the first schema: organizations, their API tokens, their tunnels and the audit log. */
export function initialMigration(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('org')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()

      await db.schema
        .createTable('api_token')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('org.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text')
        .execute()
      // Cascading deletes from org scan api_token by org_id.
      await db.schema.createIndex('api_token_org_id_idx').on('api_token').column('org_id').execute()

      await db.schema
        .createTable('tunnel')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('org.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('instance_url', 'text')
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('first_connected_at', 'text')
        .addColumn('last_connected_at', 'text')
        .addColumn('last_disconnected_at', 'text')
        .addUniqueConstraint('tunnel_org_id_name_unique', ['org_id', 'name'])
        .execute()
      await db.schema.createIndex('tunnel_org_id_idx').on('tunnel').column('org_id').execute()

      // The integer key keeps insertion order, so events logged within the same millisecond still
      // list in the order they happened. The identity syntax is the only DDL that differs by dialect.
      // org_id is deliberately not a foreign key: the audit trail must outlive a deleted organization.
      await db.schema
        .createTable('audit_event')
        .addColumn('id', dialect === 'postgres' ? 'bigint' : 'integer', (c) =>
          dialect === 'postgres' ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('org_id', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('source_address', 'text')
        .addColumn('details', 'text')
        .execute()
      await db.schema.createIndex('audit_event_org_id_idx').on('audit_event').columns(['org_id', 'id']).execute()
    },
  }
}
