import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { OrgTable, StoreSchema } from './schema.ts'

export interface Org {
  id: string
  name: string
  createdAt: string
}

export class OrgRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  async create(input: { id: string; name: string }): Promise<Org> {
    const row = { id: input.id, name: input.name, created_at: new Date().toISOString() }
    await this.#db.insertInto('org').values(row).execute()
    return toOrg(row)
  }

  async get(id: string): Promise<Org | undefined> {
    const row = await this.#db.selectFrom('org').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toOrg(row)
  }

  /** The oldest organization: a single-tenant install treats it as "the" organization. */
  async first(): Promise<Org | undefined> {
    const row = await this.#db.selectFrom('org').selectAll().orderBy('created_at').orderBy('id').limit(1).executeTakeFirst()
    return row === undefined ? undefined : toOrg(row)
  }

  /** Removes the organization with its tokens and tunnels (foreign keys cascade); its audit trail stays. */
  async delete(id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('org').where('id', '=', id).executeTakeFirst()
    return result.numDeletedRows > 0n
  }
}

function toOrg(row: Selectable<OrgTable>): Org {
  return { id: row.id, name: row.name, createdAt: row.created_at }
}
