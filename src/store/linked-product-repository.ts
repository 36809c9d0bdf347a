import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { LinkedProductTable, StoreSchema } from './schema.ts'

export interface LinkedProduct {
  id: string
  tunnelId: string
  name: string
  /** hex SHA-256 of the product's secret, or null when only its source addresses identify it */
  credentialHash: string | null
  /** CIDR blocks as stored (validated and normalised before they get here) */
  cidrs: string[]
  createdAt: string
}

/** The linked products of tunnels (`linked_product`); rows go with their tunnel (ON DELETE CASCADE). */
export class LinkedProductRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  async create(p: LinkedProduct): Promise<void> {
    await this.#db
      .insertInto('linked_product')
      .values({ id: p.id, tunnel_id: p.tunnelId, name: p.name, credential_hash: p.credentialHash, cidrs: JSON.stringify(p.cidrs), created_at: p.createdAt })
      .execute()
  }

  /** A tunnel's products, oldest first. */
  async listForTunnel(tunnelId: string): Promise<LinkedProduct[]> {
    const rows = await this.#db.selectFrom('linked_product').selectAll().where('tunnel_id', '=', tunnelId).orderBy('created_at').orderBy('id').execute()
    return rows.map(toProduct)
  }

  /** Every product of every tunnel: what the ingress loads its access policies from. */
  async listAll(): Promise<LinkedProduct[]> {
    const rows = await this.#db.selectFrom('linked_product').selectAll().orderBy('tunnel_id').orderBy('created_at').execute()
    return rows.map(toProduct)
  }

  /** Deletes one product of one tunnel; false when there is no such product on that tunnel. */
  async delete(tunnelId: string, id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('linked_product').where('tunnel_id', '=', tunnelId).where('id', '=', id).executeTakeFirst()
    return result.numDeletedRows > 0n
  }
}

function toProduct(row: Selectable<LinkedProductTable>): LinkedProduct {
  let cidrs: string[] = []
  try {
    const parsed: unknown = JSON.parse(row.cidrs)
    if (Array.isArray(parsed)) cidrs = parsed.filter((c): c is string => typeof c === 'string')
  } catch {
    // A row written by hand with bad JSON allows no source address rather than every one.
    cidrs = ['0.0.0.0/32']
  }
  return { id: row.id, tunnelId: row.tunnel_id, name: row.name, credentialHash: row.credential_hash, cidrs, createdAt: row.created_at }
}
