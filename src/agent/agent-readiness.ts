import type { ReadinessCheck } from '../observability/metrics/index.ts'
import type { Database } from '../store/index.ts'
import type { AgentNodeStatus } from './status-feed.ts'

/**
 * What an agent's /readyz checks: at least one session to the tunnel server is connected (a node
 * with none cannot relay a caller) and, for a node of an on-prem instance, its database answers.
 */
export function agentReadinessChecks(deps: { status: () => AgentNodeStatus; database?: Pick<Database, 'ping'> | undefined }): ReadinessCheck[] {
  const { database } = deps
  return [
    {
      name: 'sessions',
      check: () => {
        const st = deps.status()
        if (st.sessions === 0) throw new Error(`no session connected to the tunnel server (${st.status ?? 'no key'}: ${st.reason})`)
      },
    },
    ...(database === undefined ? [] : [{ name: 'database', check: () => database.ping() }]),
  ]
}
