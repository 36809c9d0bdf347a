import type { Kysely, Migration } from 'kysely'

/**
 * The admin consoles' sign-in: `console_user` (a person with a scrypt password hash) and
 * `console_session` (signed-in browsers). One schema serves both sides: on a tunnel server a user
 * belongs to an organization; in an on-prem instance database `org_id` is null and the users are
 * the instance's admins, so every node's console signs in against the same rows.
 */
export function consoleMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('console_user')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.references('org.id').onDelete('cascade'))
        // Unique across the table: sign-in names a user without naming an organization.
        .addColumn('username', 'text', (c) => c.notNull().unique())
        // "scrypt$N$r$p$salt$hash": the parameters travel with the hash, so they can be raised later
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('password_changed_at', 'text', (c) => c.notNull())
        .execute()

      await db.schema
        .createTable('console_session')
        // SHA-256 of the cookie value: a copy of the database cannot be replayed as a session.
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('console_user.id').onDelete('cascade'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_seen_at', 'text', (c) => c.notNull())
        .addColumn('source_address', 'text')
        .execute()
      await db.schema.createIndex('console_session_user_idx').on('console_session').column('user_id').execute()
    },
  }
}
