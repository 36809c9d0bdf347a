import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { InstanceNodeTable, StoreSchema } from './schema.ts'

export interface InstanceNodeRecord {
  nodeId: string
  /** host name or address of the node */
  address: string
  version: string
  startedAt: string
  heartbeatAt: string
  /** the node's heartbeat interval: silence of a few intervals means it is down */
  heartbeatMs: number
  /** when the node last stopped gracefully; null while it is running (or if it died silently) */
  stoppedAt: string | null
  /** the tunnel the status is about; null when the instance has no key */
  tunnelId: string | null
  /** CONNECTED | CONNECTING | UNAVAILABLE | ERROR, or null when the instance has no key */
  status: string | null
  reason: string
  /** error code behind an ERROR or UNAVAILABLE status */
  code: string | null
  statusSince: string
  /** live sessions */
  sessions: number
  sessionsWanted: number
}

export type InstanceNodeReport = Omit<InstanceNodeRecord, 'stoppedAt'>

export interface InstanceNodeStopStatus {
  status: string | null
  reason: string
  code: string | null
  sessions: number
}

/** The agent nodes of the on-prem instance and what each last reported (`instance_node`). */
export class InstanceNodeRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  /** Inserts or overwrites the node's row. A node that reports is running, so stoppedAt is cleared. */
  async report(r: InstanceNodeReport): Promise<void> {
    const row = {
      address: r.address,
      version: r.version,
      started_at: r.startedAt,
      heartbeat_at: r.heartbeatAt,
      heartbeat_ms: r.heartbeatMs,
      stopped_at: null,
      tunnel_id: r.tunnelId,
      status: r.status,
      reason: r.reason,
      code: r.code,
      status_since: r.statusSince,
      sessions: r.sessions,
      sessions_wanted: r.sessionsWanted,
    }
    await this.#db
      .insertInto('instance_node')
      .values({ node_id: r.nodeId, ...row })
      .onConflict((oc) => oc.column('node_id').doUpdateSet(row))
      .execute()
  }

  /**
   * Records a graceful stop with the node's final status; false when the node has no row. statusSince
   * moves to `atIso` only if the status itself changes, so it keeps meaning "in this status since".
   */
  async markStopped(nodeId: string, atIso: string, status: InstanceNodeStopStatus): Promise<boolean> {
    const result = await this.#db
      .updateTable('instance_node')
      .set((eb) => ({
        stopped_at: atIso,
        heartbeat_at: atIso,
        // Evaluated against the row as it was before this update, on both dialects.
        status_since: eb
          .case()
          .when('status', 'is not distinct from', status.status)
          .then(eb.ref('status_since'))
          .else(atIso)
          .end(),
        status: status.status,
        reason: status.reason,
        code: status.code,
        sessions: status.sessions,
      }))
      .where('node_id', '=', nodeId)
      .executeTakeFirst()
    return result.numUpdatedRows > 0n
  }

  async get(nodeId: string): Promise<InstanceNodeRecord | undefined> {
    const row = await this.#db.selectFrom('instance_node').selectAll().where('node_id', '=', nodeId).executeTakeFirst()
    return row === undefined ? undefined : toRecord(row)
  }

  /** Every node, by id. */
  async list(): Promise<InstanceNodeRecord[]> {
    const rows = await this.#db.selectFrom('instance_node').selectAll().orderBy('node_id').execute()
    return rows.map(toRecord)
  }

  async remove(nodeId: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('instance_node').where('node_id', '=', nodeId).executeTakeFirst()
    return result.numDeletedRows > 0n
  }
}

function toRecord(row: Selectable<InstanceNodeTable>): InstanceNodeRecord {
  return {
    nodeId: row.node_id,
    address: row.address,
    version: row.version,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    heartbeatMs: Number(row.heartbeat_ms),
    stoppedAt: row.stopped_at,
    tunnelId: row.tunnel_id,
    status: row.status,
    reason: row.reason,
    code: row.code,
    statusSince: row.status_since,
    // Number() guards against a driver that returns integers as strings or bigints.
    sessions: Number(row.sessions),
    sessionsWanted: Number(row.sessions_wanted),
  }
}
