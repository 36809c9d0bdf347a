import type { ClusterNode } from '../cluster/index.ts'
import { TerminalProgress, describeDrain, type Logger, type ProgressOutput } from '../observability/index.ts'
import type { MetricsListener } from '../observability/metrics/index.ts'
import type { Database } from '../store/index.ts'
import type { OnpremConsole } from './console/onprem-console.ts'
import type { NodeSessions } from './connector/node-sessions.ts'
import type { InstanceNode } from './instance/instance-node.ts'

export interface AgentDrainParts {
  /** the sessions for the current key (undefined while an instance has no key) */
  sessions(): NodeSessions | undefined
  /** a node of an on-prem instance closes its sessions itself and records the node stopped */
  instance?: InstanceNode | undefined
  instanceConsole?: OnpremConsole | undefined
  metricsListener(): MetricsListener | undefined
  cluster?: ClusterNode | undefined
  database?: Database | undefined
}

/**
 * The agent's close. Its console goes first (no admin change lands mid-drain), then every session
 * gets GOAWAY and the relays in flight may finish (each session up to drainTimeoutMs); only then
 * do /metrics and /readyz go, so they can be watched through the drain, then the cluster bus and
 * the database the rest relied on. Idempotent: every call gets the one drain.
 */
export function agentClose(parts: AgentDrainParts, options: { drainTimeoutMs: number; log: Logger; terminal?: ProgressOutput | undefined }): () => Promise<void> {
  const { log } = options
  // One drain whatever calls close (a second signal, the CLI and a test harness): a second run
  // would close the database under the first one's drain and log a drain that did not happen.
  let closing: Promise<void> | undefined
  return () => (closing ??= drain())
  async function drain(): Promise<void> {
    // A caller's connection is one relay; a session still draining is one that has relays left
    // (close() ends a session without any at once).
    const left = () => {
      const connectors = parts.sessions()?.connectors ?? []
      return { connections: connectors.reduce((n, c) => n + c.activeRelays, 0), sessions: connectors.filter((c) => c.activeRelays > 0).length }
    }
    const startedAt = Date.now()
    log.info({ ...left(), drainTimeoutMs: options.drainTimeoutMs }, 'draining')
    const draining = new TerminalProgress({ out: options.terminal })
    draining.follow((elapsedMs) => describeDrain(left(), elapsedMs))
    try {
      await parts.instanceConsole?.close()
      if (parts.instance !== undefined) await parts.instance.close()
      else await parts.sessions()?.close()
    } finally {
      draining.done()
    }
    log.info({ elapsedMs: Date.now() - startedAt }, 'drained')
    await parts.metricsListener()?.close()
    await parts.cluster?.close()
    await parts.database?.close()
  }
}
