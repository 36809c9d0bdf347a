import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { InstanceTunnelTable, StoreSchema } from './schema.ts'

export interface InstanceKeyRecord {
  /** the whole security key text; never logged */
  securityKey: string
  tunnelId: string
  serverUrl: string
  addedAt: string
  /** free text naming who added the key, e.g. "cli on host X" */
  addedBy: string | null
  /** the tunnel's name as the server knows it; null until a node has connected */
  tunnelName: string | null
  /** the name of the cloud organization the tunnel belongs to; null until a node has connected */
  connectedTo: string | null
  /** where cloud callers reach the tunnel, as the server reported it */
  applicationLinkUrl: string | null
}

export type NewInstanceKey = Omit<InstanceKeyRecord, 'tunnelName' | 'connectedTo' | 'applicationLinkUrl'>

export type AddInstanceKeyResult = { added: true } | { added: false; existing: InstanceKeyRecord }

// Every row uses this primary key, so the database itself refuses a second key.
const SLOT = 'instance'

/** The on-prem instance's one security key (`instance_tunnel`). */
export class InstanceKeyRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  async get(): Promise<InstanceKeyRecord | undefined> {
    const row = await this.#db.selectFrom('instance_tunnel').selectAll().where('slot', '=', SLOT).executeTakeFirst()
    return row === undefined ? undefined : toRecord(row)
  }

  /**
   * Stores the key unless the instance already has one, in which case that one is returned. Nodes or
   * CLIs adding at the same time all try the insert; the primary key lets exactly one through.
   */
  async add(key: NewInstanceKey): Promise<AddInstanceKeyResult> {
    // Each pass either inserts or finds a row. It repeats only when a concurrent remove() deleted the
    // winner between our refused insert and our read, and then the slot is free to try again.
    for (;;) {
      const result = await this.#db
        .insertInto('instance_tunnel')
        .values({
          slot: SLOT,
          security_key: key.securityKey,
          tunnel_id: key.tunnelId,
          server_url: key.serverUrl,
          added_at: key.addedAt,
          added_by: key.addedBy,
          tunnel_name: null,
          connected_to: null,
        })
        .onConflict((oc) => oc.column('slot').doNothing())
        .executeTakeFirst()
      if ((result.numInsertedOrUpdatedRows ?? 0n) > 0n) return { added: true }
      const existing = await this.get()
      if (existing !== undefined) return { added: false, existing }
    }
  }

  /** Deletes the key and returns what it was; undefined when there was none. */
  async remove(): Promise<InstanceKeyRecord | undefined> {
    const row = await this.#db.deleteFrom('instance_tunnel').where('slot', '=', SLOT).returningAll().executeTakeFirst()
    return row === undefined ? undefined : toRecord(row)
  }

  /**
   * Remembers the names the server reported for `tunnelId`. A report that arrives after the key was
   * replaced is about a tunnel the instance no longer uses, so it changes nothing.
   */
  async recordServerNames(tunnelId: string, names: { tunnelName: string; connectedTo: string; applicationLinkUrl?: string | undefined }): Promise<void> {
    await this.#db
      .updateTable('instance_tunnel')
      .set({ tunnel_name: names.tunnelName, connected_to: names.connectedTo, ...(names.applicationLinkUrl === undefined ? {} : { application_link_url: names.applicationLinkUrl }) })
      .where('slot', '=', SLOT)
      .where('tunnel_id', '=', tunnelId)
      .execute()
  }
}

function toRecord(row: Selectable<InstanceTunnelTable>): InstanceKeyRecord {
  return {
    securityKey: row.security_key,
    tunnelId: row.tunnel_id,
    serverUrl: row.server_url,
    addedAt: row.added_at,
    addedBy: row.added_by,
    tunnelName: row.tunnel_name,
    connectedTo: row.connected_to,
    applicationLinkUrl: row.application_link_url,
  }
}
