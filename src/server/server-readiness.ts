import type { ReadinessCheck } from '../observability/metrics/index.ts'
import type { Database } from '../store/index.ts'
import { replicaReadiness, type ReplicaReadinessDeps } from './replica-forward/replica-readiness.ts'

/**
 * What the server's /readyz checks: the database answers, both listeners listen, and, for a
 * replica, that it can serve the callers of every tunnel connected somewhere (docs/scaling.md).
 * A replica that can neither relay nor forward would turn callers away.
 */
export function serverReadinessChecks(deps: {
  database: Pick<Database, 'ping'>
  https: { readonly listening: boolean }
  ingress: { readonly listening: boolean }
  /** with replicas; absent on a lone server */
  replica?: ReplicaReadinessDeps | undefined
}): ReadinessCheck[] {
  const listening = (name: string, target: { readonly listening: boolean }): ReadinessCheck => ({
    name,
    check: () => {
      if (!target.listening) throw new Error(`the ${name} listener is not listening`)
    },
  })
  return [
    { name: 'database', check: () => deps.database.ping() },
    listening('https', deps.https),
    listening('ingress', deps.ingress),
    ...(deps.replica === undefined ? [] : [replicaReadiness(deps.replica)]),
  ]
}
