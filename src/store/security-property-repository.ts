import type { Kysely } from 'kysely'
import type { Database } from './database.ts'
import type { StoreSchema } from './schema.ts'

/** Named secrets shared by the nodes of a cluster (`security_property`). Values are never logged. */
export class SecurityPropertyRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  /** The value, '' when it was set empty, undefined when there is no row. */
  async get(key: string): Promise<string | undefined> {
    const row = await this.#db.selectFrom('security_property').select('property_value').where('property_key', '=', key).executeTakeFirst()
    return row?.property_value
  }

  /**
   * Inserts the value unless a row exists; true when this call inserted it. Nodes starting together
   * all try, exactly one wins, and every one then reads back the winner's value.
   */
  async insertIfAbsent(key: string, value: string): Promise<boolean> {
    const result = await this.#db
      .insertInto('security_property')
      .values({ property_key: key, property_value: value })
      .onConflict((oc) => oc.column('property_key').doNothing())
      .executeTakeFirst()
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n
  }

  async set(key: string, value: string): Promise<void> {
    await this.#db
      .insertInto('security_property')
      .values({ property_key: key, property_value: value })
      .onConflict((oc) => oc.column('property_key').doUpdateSet({ property_value: value }))
      .execute()
  }

  async delete(key: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('security_property').where('property_key', '=', key).executeTakeFirst()
    return result.numDeletedRows > 0n
  }
}
