import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { ConsoleSessionTable, StoreSchema } from './schema.ts'

export interface ConsoleSessionRecord {
  /** SHA-256 hex of the session id the browser holds; the id itself is never stored */
  idHash: string
  userId: string
  createdAt: string
  lastSeenAt: string
  sourceAddress: string | null
}

/** Signed-in console browsers (`console_session`). Expiry is decided by the caller's clock. */
export class ConsoleSessionRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  async create(session: ConsoleSessionRecord): Promise<void> {
    await this.#db
      .insertInto('console_session')
      .values({ id_hash: session.idHash, user_id: session.userId, created_at: session.createdAt, last_seen_at: session.lastSeenAt, source_address: session.sourceAddress })
      .execute()
  }

  async find(idHash: string): Promise<ConsoleSessionRecord | undefined> {
    const row = await this.#db.selectFrom('console_session').selectAll().where('id_hash', '=', idHash).executeTakeFirst()
    return row === undefined ? undefined : toRecord(row)
  }

  async touch(idHash: string, at: string): Promise<void> {
    await this.#db.updateTable('console_session').set({ last_seen_at: at }).where('id_hash', '=', idHash).execute()
  }

  async delete(idHash: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('console_session').where('id_hash', '=', idHash).executeTakeFirst()
    return result.numDeletedRows > 0n
  }

  /** Ends every session of a user (a changed password signs every browser out). */
  async deleteForUser(userId: string): Promise<number> {
    const result = await this.#db.deleteFrom('console_session').where('user_id', '=', userId).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /** Removes sessions idle since before `idleBefore` or created before `createdBefore`. */
  async deleteExpired(idleBefore: string, createdBefore: string): Promise<number> {
    const result = await this.#db
      .deleteFrom('console_session')
      .where((eb) => eb.or([eb('last_seen_at', '<', idleBefore), eb('created_at', '<', createdBefore)]))
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

function toRecord(row: Selectable<ConsoleSessionTable>): ConsoleSessionRecord {
  return { idHash: row.id_hash, userId: row.user_id, createdAt: row.created_at, lastSeenAt: row.last_seen_at, sourceAddress: row.source_address }
}
