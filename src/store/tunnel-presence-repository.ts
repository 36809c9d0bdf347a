import type { Kysely } from 'kysely'
import type { Database } from './database.ts'
import type { StoreSchema } from './schema.ts'

/**
 * Which tunnel server replicas hold at least one live agent session of a tunnel
 * (`tunnel_presence`): each replica adds its row when a tunnel gets its first session there and
 * removes it with the last. Rows of a replica that died are left behind; readers count only the
 * replicas whose heartbeat is live, and a replica clears its own rows when it starts.
 */
export class TunnelPresenceRepository {
  readonly #db: Kysely<StoreSchema>

  constructor(database: Pick<Database, 'db'>) {
    this.#db = database.db
  }

  async add(tunnelId: string, nodeId: string, sinceIso: string): Promise<void> {
    await this.#db
      .insertInto('tunnel_presence')
      .values({ tunnel_id: tunnelId, node_id: nodeId, since: sinceIso })
      .onConflict((oc) => oc.columns(['tunnel_id', 'node_id']).doUpdateSet({ since: sinceIso }))
      .execute()
  }

  async remove(tunnelId: string, nodeId: string): Promise<void> {
    await this.#db.deleteFrom('tunnel_presence').where('tunnel_id', '=', tunnelId).where('node_id', '=', nodeId).execute()
  }

  /** Forgets every row of one replica (at its start: what a crash left). */
  async clearNode(nodeId: string): Promise<void> {
    await this.#db.deleteFrom('tunnel_presence').where('node_id', '=', nodeId).execute()
  }

  /**
   * For each of `tunnelIds` (all tunnels when omitted), the server replicas other than `exceptNodeId`
   * that hold a session of it and whose heartbeat is at or after `liveSinceIso`.
   */
  async liveReplicas(options: { tunnelIds?: readonly string[]; exceptNodeId: string; liveSinceIso: string }): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    if (options.tunnelIds !== undefined && options.tunnelIds.length === 0) return out
    const rows = await this.#db
      .selectFrom('tunnel_presence as p')
      .innerJoin('cluster_node as n', 'n.id', 'p.node_id')
      .select(['p.tunnel_id', 'p.node_id'])
      .where('n.kind', '=', 'server')
      .where('n.heartbeat_at', '>=', options.liveSinceIso)
      .where('p.node_id', '<>', options.exceptNodeId)
      .$if(options.tunnelIds !== undefined, (qb) => qb.where('p.tunnel_id', 'in', options.tunnelIds as string[]))
      .orderBy('p.tunnel_id')
      .orderBy('p.node_id')
      .execute()
    for (const r of rows) {
      const list = out.get(r.tunnel_id)
      if (list === undefined) out.set(r.tunnel_id, [r.node_id])
      else list.push(r.node_id)
    }
    return out
  }

  /** The live server replicas other than `exceptNodeId` that hold a session of any tunnel. */
  async replicasHoldingAny(options: { exceptNodeId: string; liveSinceIso: string }): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('tunnel_presence as p')
      .innerJoin('cluster_node as n', 'n.id', 'p.node_id')
      .select('p.node_id')
      .distinct()
      .where('n.kind', '=', 'server')
      .where('n.heartbeat_at', '>=', options.liveSinceIso)
      .where('p.node_id', '<>', options.exceptNodeId)
      .execute()
    return rows.map((r) => r.node_id)
  }
}
