import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { AuditEventTable, StoreSchema } from './schema.ts'

export interface AuditEvent {
  id: number
  at: string
  orgId: string
  actor: string
  action: string
  target: string | null
  sourceAddress: string | null
  details: Record<string, unknown> | null
}

export interface NewAuditEvent {
  orgId: string
  actor: string
  action: string
  target?: string | null
  sourceAddress?: string | null
  details?: Record<string, unknown> | null
  /** Defaults to now. */
  at?: string
}

const DEFAULT_LIST_LIMIT = 100

export class AuditRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  async record(event: NewAuditEvent): Promise<AuditEvent> {
    const row = await this.#db
      .insertInto('audit_event')
      .values({
        at: event.at ?? new Date().toISOString(),
        org_id: event.orgId,
        actor: event.actor,
        action: event.action,
        target: event.target ?? null,
        source_address: event.sourceAddress ?? null,
        details: event.details == null ? null : JSON.stringify(event.details),
      })
      .returningAll()
      .executeTakeFirstOrThrow()
    return toAuditEvent(row)
  }

  /** Newest first. */
  async list(orgId: string, options: { limit?: number } = {}): Promise<AuditEvent[]> {
    const rows = await this.#db
      .selectFrom('audit_event')
      .selectAll()
      .where('org_id', '=', orgId)
      .orderBy('id', 'desc')
      .limit(options.limit ?? DEFAULT_LIST_LIMIT)
      .execute()
    return rows.map(toAuditEvent)
  }
}

function toAuditEvent(row: Selectable<AuditEventTable>): AuditEvent {
  return {
    id: Number(row.id),
    at: row.at,
    orgId: row.org_id,
    actor: row.actor,
    action: row.action,
    target: row.target,
    sourceAddress: row.source_address,
    details: row.details === null ? null : (JSON.parse(row.details) as Record<string, unknown>),
  }
}
