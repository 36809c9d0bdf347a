import type { ReadinessCheck } from '../../observability/metrics/index.ts'

export interface ReplicaReadinessDeps {
  /** tunnels this replica holds an agent session of */
  ownTunnels(): ReadonlySet<string>
  /** for each tunnel some other live replica holds a session of: those replicas */
  heldByPeers(): Promise<ReadonlyMap<string, readonly string[]>>
  /** peers this replica has a bus link with that proved the cluster key (forwarding needs one) */
  keyedLinks(): readonly string[]
  /** ms since this replica started */
  uptimeMs(): number
  /** how long agents get to dial a new replica before a path to a peer is enough (replicaReadyGraceMs) */
  graceMs: number
}

/**
 * /readyz of a replica. Ready when it can serve the callers of every tunnel that is connected
 * somewhere, on its own:
 *   - every tunnel another live replica holds is held here too (agents have dialled this replica;
 *     with no tunnel connected anywhere there is nothing to wait for, so the first replica of a
 *     cluster is never held back);
 * or, once the grace has passed since start, through peers:
 *   - every tunnel it lacks is held by a replica it has an authenticated link to (it forwards).
 *
 * Why not "a path to a peer" at once: a rolling restart takes the next replica down as soon as this
 * one says ready. If that next one was its only path, callers of this one would meet 503s until the
 * agents dial it (they learn of a new replica at a heartbeat). The grace keeps a replica that agents
 * never reach (a wrong --advertise-url) from blocking a deployment for good: it forwards.
 * A lone server (no cluster) does not run this check at all.
 */
export function replicaReadiness(deps: ReplicaReadinessDeps): ReadinessCheck {
  return {
    name: 'tunnels',
    async check() {
      const own = deps.ownTunnels()
      const missing = [...(await deps.heldByPeers())].filter(([tunnelId]) => !own.has(tunnelId))
      if (missing.length === 0) return
      const linked = new Set(deps.keyedLinks())
      const unreachable = missing.filter(([, holders]) => !holders.some((h) => linked.has(h)))
      if (unreachable.length === 0 && deps.uptimeMs() >= deps.graceMs) return
      const example = missing[0]!
      throw new Error(
        unreachable.length > 0
          ? `${unreachable.length} connected tunnel(s) have no agent session on this replica and no authenticated link to a replica that holds one (e.g. ${unreachable[0]![0]} on ${unreachable[0]![1].join(', ')})`
          : `${missing.length} connected tunnel(s) have no agent session on this replica yet (e.g. ${example[0]} on ${example[1].join(', ')}); waiting up to ${Math.ceil(deps.graceMs / 1000)} s from start for their agents before serving them through other replicas`,
      )
    },
  }
}
