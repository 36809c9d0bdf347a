import type { Kysely, Migration } from 'kysely'

/**
 * `linked_product`: the cloud callers allowed to use a tunnel's application link URL. Each holds
 * its own credential (only the hash of its secret is kept) and/or the source CIDR blocks it calls
 * from; once a tunnel has one, the ingress refuses every caller that matches none.
 */
export function linkedProductMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('linked_product')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tunnel_id', 'text', (c) => c.notNull().references('tunnel.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        // null: the product is recognised by its source address alone
        .addColumn('credential_hash', 'text')
        // JSON array of CIDR strings; '[]' when the credential alone decides
        .addColumn('cidrs', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('linked_product_tunnel_idx').on('linked_product').column('tunnel_id').execute()
    },
  }
}
