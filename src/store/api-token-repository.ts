import type { Kysely } from 'kysely'
import type { Database } from './database.ts'
import type { StoreSchema } from './schema.ts'

export interface ApiToken {
  id: string
  orgId: string
  name: string
  createdAt: string
  lastUsedAt: string | null
}

/** What an authenticated request learns about the token it presented. */
export interface ApiTokenIdentity {
  id: string
  orgId: string
  name: string
}

export class ApiTokenRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  /** `tokenHash` is the caller's SHA-256 hex of the secret; the secret itself is never stored. */
  async create(input: { id: string; orgId: string; name: string; tokenHash: string }): Promise<ApiToken> {
    const createdAt = new Date().toISOString()
    await this.#db
      .insertInto('api_token')
      .values({
        id: input.id,
        org_id: input.orgId,
        name: input.name,
        token_hash: input.tokenHash,
        created_at: createdAt,
        last_used_at: null,
      })
      .execute()
    return { id: input.id, orgId: input.orgId, name: input.name, createdAt, lastUsedAt: null }
  }

  async findByHash(tokenHash: string): Promise<ApiTokenIdentity | undefined> {
    const row = await this.#db
      .selectFrom('api_token')
      .select(['id', 'org_id', 'name'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst()
    return row === undefined ? undefined : { id: row.id, orgId: row.org_id, name: row.name }
  }

  /** Every token's id and hash, of every organization: which hashes are worth a lookup. */
  async listHashes(): Promise<Array<{ id: string; tokenHash: string }>> {
    const rows = await this.#db.selectFrom('api_token').select(['id', 'token_hash']).execute()
    return rows.map((r) => ({ id: r.id, tokenHash: r.token_hash }))
  }

  /** Oldest first. */
  async list(orgId: string): Promise<ApiToken[]> {
    const rows = await this.#db
      .selectFrom('api_token')
      .select(['id', 'org_id', 'name', 'created_at', 'last_used_at'])
      .where('org_id', '=', orgId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map((r) => ({ id: r.id, orgId: r.org_id, name: r.name, createdAt: r.created_at, lastUsedAt: r.last_used_at }))
  }

  /** true when a token of this organization was deleted */
  async delete(orgId: string, id: string): Promise<boolean> {
    const res = await this.#db.deleteFrom('api_token').where('org_id', '=', orgId).where('id', '=', id).executeTakeFirst()
    return Number(res.numDeletedRows) > 0
  }

  async touch(id: string, at: string): Promise<void> {
    await this.#db.updateTable('api_token').set({ last_used_at: at }).where('id', '=', id).execute()
  }
}
