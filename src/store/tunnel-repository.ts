import type { Kysely, Selectable } from 'kysely'
import { TunnelError } from '../errors/index.ts'
import type { Database } from './database.ts'
import type { StoreDialect } from './store-dialect.ts'
import type { StoreSchema, TunnelTable } from './schema.ts'

export interface Tunnel {
  id: string
  orgId: string
  name: string
  instanceUrl: string | null
  secretHash: string
  createdAt: string
  firstConnectedAt: string | null
  lastConnectedAt: string | null
  lastDisconnectedAt: string | null
}

export interface NewTunnel {
  /** Caller-generated; it becomes a DNS label. */
  id: string
  orgId: string
  name: string
  instanceUrl: string | null
  secretHash: string
  /** The most tunnels the organization may hold once this one exists. */
  maxPerOrg: number
}

export class TunnelRepository {
  readonly #db: Kysely<StoreSchema>
  readonly #dialect: StoreDialect

  constructor(database: Pick<Database, 'db' | 'dialect'>) {
    this.#db = database.db
    this.#dialect = database.dialect
  }

  /**
   * Count, name check and insert share one transaction serialized per organization, so concurrent
   * creates can neither overshoot `maxPerOrg` nor race each other past the name check.
   */
  async create(input: NewTunnel): Promise<Tunnel> {
    return this.#db.transaction().execute(async (trx) => {
      // SQLite transactions run one at a time: one connection per process, and BEGIN IMMEDIATE
      // (immediate-sqlite-dialect.ts) holds the file's write lock against other processes.
      // PostgreSQL runs them in parallel: the row lock on the org makes creates for the same org
      // take turns, and READ COMMITTED lets each see the rows its predecessor committed.
      const org = await trx
        .selectFrom('org')
        .select('id')
        .where('id', '=', input.orgId)
        .$if(this.#dialect === 'postgres', (qb) => qb.forUpdate())
        .executeTakeFirst()
      if (org === undefined) {
        throw new TunnelError('TUN_ERR_INTERNAL', `organization ${input.orgId} does not exist`)
      }

      const count = await countTunnels(trx, input.orgId)
      if (count >= input.maxPerOrg) {
        throw new TunnelError(
          'TUN_ERR_TUNNEL_LIMIT_REACHED',
          `organization already has ${count} tunnels (the limit${count === input.maxPerOrg ? '' : ` is ${input.maxPerOrg}`}); delete one to create another`,
          { details: { limit: input.maxPerOrg } },
        )
      }

      const clash = await trx
        .selectFrom('tunnel')
        .select('id')
        .where('org_id', '=', input.orgId)
        .where('name', '=', input.name)
        .executeTakeFirst()
      if (clash !== undefined) {
        throw new TunnelError('TUN_ERR_TUNNEL_NAME_TAKEN', `a tunnel named "${input.name}" already exists in the organization`, {
          details: { name: input.name },
        })
      }

      const row: Selectable<TunnelTable> = {
        id: input.id,
        org_id: input.orgId,
        name: input.name,
        instance_url: input.instanceUrl,
        secret_hash: input.secretHash,
        created_at: new Date().toISOString(),
        first_connected_at: null,
        last_connected_at: null,
        last_disconnected_at: null,
      }
      await trx.insertInto('tunnel').values(row).execute()
      return toTunnel(row)
    })
  }

  async list(orgId: string): Promise<Tunnel[]> {
    const rows = await this.#db
      .selectFrom('tunnel')
      .selectAll()
      .where('org_id', '=', orgId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toTunnel)
  }

  async get(orgId: string, id: string): Promise<Tunnel | undefined> {
    const row = await this.#db
      .selectFrom('tunnel')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row === undefined ? undefined : toTunnel(row)
  }

  /** Not scoped to an organization: the agent gateway knows only the tunnel id it was handed. */
  async findById(id: string): Promise<Tunnel | undefined> {
    const row = await this.#db.selectFrom('tunnel').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toTunnel(row)
  }

  /** Every tunnel id, of every organization: the agent gateway's list of ids worth a lookup. */
  async listIds(): Promise<string[]> {
    const rows = await this.#db.selectFrom('tunnel').select('id').execute()
    return rows.map((r) => r.id)
  }

  async delete(orgId: string, id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('tunnel').where('org_id', '=', orgId).where('id', '=', id).executeTakeFirst()
    return result.numDeletedRows > 0n
  }

  /** Keeps the first ever connection time; only the latest one moves. */
  async markConnected(id: string, atIso: string): Promise<void> {
    await this.#db
      .updateTable('tunnel')
      .set((eb) => ({
        first_connected_at: eb.fn.coalesce('first_connected_at', eb.val(atIso)),
        last_connected_at: atIso,
      }))
      .where('id', '=', id)
      .execute()
  }

  async markDisconnected(id: string, atIso: string): Promise<void> {
    await this.#db.updateTable('tunnel').set({ last_disconnected_at: atIso }).where('id', '=', id).execute()
  }

  async countByOrg(orgId: string): Promise<number> {
    return countTunnels(this.#db, orgId)
  }
}

async function countTunnels(db: Kysely<StoreSchema>, orgId: string): Promise<number> {
  const row = await db
    .selectFrom('tunnel')
    .select((eb) => eb.fn.countAll<number | string | bigint>().as('count'))
    .where('org_id', '=', orgId)
    .executeTakeFirstOrThrow()
  // PostgreSQL's count(*) is int8, which pg returns as a string to stay exact.
  return Number(row.count)
}

function toTunnel(row: Selectable<TunnelTable>): Tunnel {
  return {
    id: row.id,
    orgId: row.org_id,
    name: row.name,
    instanceUrl: row.instance_url,
    secretHash: row.secret_hash,
    createdAt: row.created_at,
    firstConnectedAt: row.first_connected_at,
    lastConnectedAt: row.last_connected_at,
    lastDisconnectedAt: row.last_disconnected_at,
  }
}
