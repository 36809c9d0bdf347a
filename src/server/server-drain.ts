import { TerminalProgress, describeDrain, type Logger, type ProgressOutput } from '../observability/index.ts'
import type { AgentGateway } from './agent-gateway/agent-gateway.ts'
import type { SessionRegistry } from './agent-gateway/session-registry.ts'
import type { IngressServer } from './ingress/ingress-server.ts'
import type { TunnelPresence } from './tunnel-presence.ts'

/** Undoes one step of the start-up; they run last first. */
export type Cleanup = () => Promise<void> | void

export interface ServerDrainParts {
  ingress: IngressServer
  gateway: AgentGateway
  registry: SessionRegistry
  presence: Pick<TunnelPresence, 'settled'>
  /** in the order the start-up made them (the database's first) */
  cleanups: readonly Cleanup[]
}

/**
 * The server's close, idempotent. Callers first, then what they rely on: the ingress drains (its
 * callers' requests still reach live sessions), then the gateway takes no new agents, then every
 * session gets GOAWAY and its relays may finish; each of the two drains is bounded by
 * drainTimeoutMs. What is left is cut, the presence writes of the sessions that ended land, and
 * only then do the cleanups run, newest first, so the database closes last.
 */
export function serverClose(parts: ServerDrainParts, options: { drainTimeoutMs: number; log: Logger; terminal?: ProgressOutput | undefined }): () => Promise<void> {
  const { ingress, registry } = parts
  const { log } = options
  let closing: Promise<void> | undefined
  return () =>
    (closing ??= (async () => {
      const left = () => ({ connections: ingress.connectionCount, sessions: registry.size })
      const startedAt = Date.now()
      log.info({ ...left(), drainTimeoutMs: options.drainTimeoutMs }, 'draining')
      const draining = new TerminalProgress({ out: options.terminal })
      draining.follow((elapsedMs) => describeDrain(left(), elapsedMs))
      try {
        await ingress.close(options.drainTimeoutMs)
        parts.gateway.close()
        await Promise.race([registry.closeAll(), new Promise((r) => setTimeout(r, options.drainTimeoutMs).unref())])
      } finally {
        draining.done()
      }
      log.info({ elapsedMs: Date.now() - startedAt }, 'drained')
      registry.destroyAll()
      await parts.presence.settled()
      await runCleanups(parts.cleanups)
    })())
}

/** Runs the cleanups newest first: also what a start-up that failed half-way does. */
export async function runCleanups(cleanups: readonly Cleanup[]): Promise<void> {
  for (const c of [...cleanups].reverse()) await c()
}
