import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { ConsoleUserTable, StoreSchema } from './schema.ts'

export interface ConsoleUser {
  id: string
  /** null for the admins of an on-prem instance */
  orgId: string | null
  username: string
  /** "scrypt$N$r$p$salt$hash" (src/web/password-hash.ts) */
  passwordHash: string
  createdAt: string
  passwordChangedAt: string
}

/** The people who may sign in to an admin console (`console_user`). */
export class ConsoleUserRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  /**
   * Inserts the user unless the name is taken; false then. Nodes starting together may all try to
   * create the bootstrap admin: the unique name lets exactly one through, on either dialect.
   */
  async createIfAbsent(user: { id: string; orgId: string | null; username: string; passwordHash: string; at?: string }): Promise<boolean> {
    const at = user.at ?? new Date().toISOString()
    const result = await this.#db
      .insertInto('console_user')
      .values({ id: user.id, org_id: user.orgId, username: user.username, password_hash: user.passwordHash, created_at: at, password_changed_at: at })
      .onConflict((oc) => oc.column('username').doNothing())
      .executeTakeFirst()
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n
  }

  async findByUsername(username: string): Promise<ConsoleUser | undefined> {
    const row = await this.#db.selectFrom('console_user').selectAll().where('username', '=', username).executeTakeFirst()
    return row === undefined ? undefined : toUser(row)
  }

  async findById(id: string): Promise<ConsoleUser | undefined> {
    const row = await this.#db.selectFrom('console_user').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toUser(row)
  }

  async count(): Promise<number> {
    const row = await this.#db.selectFrom('console_user').select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** Sets a new password hash; false when there is no such user. */
  async setPasswordHash(id: string, passwordHash: string, at = new Date().toISOString()): Promise<boolean> {
    const result = await this.#db.updateTable('console_user').set({ password_hash: passwordHash, password_changed_at: at }).where('id', '=', id).executeTakeFirst()
    return result.numUpdatedRows > 0n
  }
}

function toUser(row: Selectable<ConsoleUserTable>): ConsoleUser {
  return {
    id: row.id,
    orgId: row.org_id,
    username: row.username,
    passwordHash: row.password_hash,
    createdAt: row.created_at,
    passwordChangedAt: row.password_changed_at,
  }
}
