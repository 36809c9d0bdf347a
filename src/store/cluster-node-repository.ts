import type { Kysely, Selectable } from 'kysely'
import type { Database } from './database.ts'
import type { ClusterNodeTable, StoreSchema } from './schema.ts'

export type ClusterNodeKind = 'server' | 'agent'

export interface ClusterNodeRecord {
  id: string
  kind: ClusterNodeKind
  /** HOST:PORT where peers reach its cluster bus */
  address: string
  startedAt: string
  heartbeatAt: string
  /** what the node last reported about itself (parsed JSON), or null */
  status: unknown
  /** server replicas: where agents reach it directly, or null */
  agentEndpoint: AgentEndpoint | null
}

/** Where agents reach a tunnel server replica directly. */
export interface AgentEndpoint {
  url: string
  /** SPKI pin of a self-signed certificate */
  pin?: string | undefined
}

/** The membership list of cluster nodes (`cluster_node`). */
export class ClusterNodeRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  /** Inserts the node, or takes over its row (a restart keeps its id). */
  async register(node: Omit<ClusterNodeRecord, 'status' | 'agentEndpoint'> & { status?: unknown; agentEndpoint?: AgentEndpoint | null }): Promise<void> {
    const row = {
      id: node.id,
      kind: node.kind,
      address: node.address,
      started_at: node.startedAt,
      heartbeat_at: node.heartbeatAt,
      status: node.status === undefined ? null : JSON.stringify(node.status),
      agent_url: node.agentEndpoint?.url ?? null,
      agent_pin: node.agentEndpoint?.pin ?? null,
    }
    await this.#db
      .insertInto('cluster_node')
      .values(row)
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({
          kind: row.kind,
          address: row.address,
          started_at: row.started_at,
          heartbeat_at: row.heartbeat_at,
          status: row.status,
          agent_url: row.agent_url,
          agent_pin: row.agent_pin,
        }),
      )
      .execute()
  }

  /**
   * Moves the heartbeat and the status (and the agent endpoint, which a replica learns only once
   * its listener is up); false when the row is gone (the node must register again).
   */
  async heartbeat(id: string, atIso: string, status: unknown, agentEndpoint?: AgentEndpoint | null): Promise<boolean> {
    const result = await this.#db
      .updateTable('cluster_node')
      .set({
        heartbeat_at: atIso,
        status: JSON.stringify(status),
        ...(agentEndpoint === undefined ? {} : { agent_url: agentEndpoint?.url ?? null, agent_pin: agentEndpoint?.pin ?? null }),
      })
      .where('id', '=', id)
      .executeTakeFirst()
    return result.numUpdatedRows > 0n
  }

  async get(id: string): Promise<ClusterNodeRecord | undefined> {
    const row = await this.#db.selectFrom('cluster_node').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toRecord(row)
  }

  /** Every node, or every node of one kind, by kind then id. */
  async list(kind?: ClusterNodeKind): Promise<ClusterNodeRecord[]> {
    const rows = await this.#db
      .selectFrom('cluster_node')
      .selectAll()
      .$if(kind !== undefined, (qb) => qb.where('kind', '=', kind!))
      .orderBy('kind')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  /** Nodes of `kind` whose heartbeat is at or after `sinceIso` (ISO-8601 UTC text sorts by time). */
  async listLive(kind: ClusterNodeKind, sinceIso: string): Promise<ClusterNodeRecord[]> {
    const rows = await this.#db
      .selectFrom('cluster_node')
      .selectAll()
      .where('kind', '=', kind)
      .where('heartbeat_at', '>=', sinceIso)
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  async remove(id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('cluster_node').where('id', '=', id).executeTakeFirst()
    return result.numDeletedRows > 0n
  }

  /** Forgets nodes silent since before `beforeIso`; returns how many. */
  async pruneSilentSince(beforeIso: string): Promise<number> {
    const result = await this.#db.deleteFrom('cluster_node').where('heartbeat_at', '<', beforeIso).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

function toRecord(row: Selectable<ClusterNodeTable>): ClusterNodeRecord {
  let status: unknown = null
  if (row.status !== null) {
    try {
      status = JSON.parse(row.status)
    } catch {
      status = null
    }
  }
  return {
    id: row.id,
    kind: row.kind === 'agent' ? 'agent' : 'server',
    address: row.address,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    status,
    agentEndpoint: row.agent_url === null ? null : { url: row.agent_url, ...(row.agent_pin === null ? {} : { pin: row.agent_pin }) },
  }
}
