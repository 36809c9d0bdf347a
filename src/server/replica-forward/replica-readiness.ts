import type { ReadinessCheck } from '../../observability/metrics/index.ts'

export interface ReplicaReadinessDeps {
  /** agent sessions this replica holds */
  ownSessions(): number
  /** live replicas other than this one that hold a session of any tunnel */
  replicasHoldingAny(): Promise<readonly string[]>
  /** peers this replica has a bus link with that proved the cluster key (forwarding needs one) */
  keyedLinks(): readonly string[]
}

/**
 * /readyz of a replica: ready when it can serve callers of every connected tunnel, that is
 *   - it holds agent sessions of its own, or
 *   - no other live replica holds any (no tunnels, or no agent connected anywhere: there is nothing
 *     to wait for, so the first replica of a cluster, or a lone one, is never held back), or
 *   - it has an authenticated link to one of the replicas that do, so it can forward to them.
 * A lone server (no cluster) does not run this check at all.
 */
export function replicaReadiness(deps: ReplicaReadinessDeps): ReadinessCheck {
  return {
    name: 'tunnels',
    async check() {
      if (deps.ownSessions() > 0) return
      const holders = await deps.replicasHoldingAny()
      if (holders.length === 0) return
      const linked = new Set(deps.keyedLinks())
      if (holders.some((h) => linked.has(h))) return
      throw new Error(`no agent session on this replica yet, and no authenticated link to a replica that holds one (${holders.join(', ')})`)
    },
  }
}
