import type { Logger } from '../observability/index.ts'
import type { TunnelPresenceRepository, TunnelRepository } from '../store/index.ts'
import type { SessionRegistry } from './agent-gateway/session-registry.ts'

export interface TunnelPresenceDeps {
  registry: SessionRegistry
  tunnels: Pick<TunnelRepository, 'markConnected' | 'markDisconnected'>
  presence: Pick<TunnelPresenceRepository, 'add' | 'remove'>
  /** this replica's cluster node id once it runs; undefined: a lone server, which keeps no presence rows */
  nodeId: () => string | undefined
  log: Logger
}

/**
 * What the database says about a tunnel's sessions, written as the registry's tunnels go up and
 * down: its connected and disconnected times, and, with replicas, this replica's `tunnel_presence`
 * row, so every replica can tell a tunnel connected elsewhere from one connected nowhere
 * (docs/scaling.md). "When a tunnel goes up or down, also write X" belongs here.
 *
 * A failed write is logged, never thrown: the sessions stay up whatever the database says.
 */
export class TunnelPresence {
  readonly #deps: TunnelPresenceDeps
  /** writes under way, awaited at close so none runs against a closed database */
  readonly #writes = new Set<Promise<unknown>>()
  /** the last presence write of each tunnel: one at a time per tunnel */
  readonly #presenceWrites = new Map<string, Promise<void>>()

  constructor(deps: TunnelPresenceDeps) {
    this.#deps = deps
    deps.registry.on('tunnel-up', (id: string) => {
      this.#track(deps.tunnels.markConnected(id, new Date().toISOString()))
      this.#writePresence(id)
    })
    deps.registry.on('tunnel-down', (id: string) => {
      this.#track(deps.tunnels.markDisconnected(id, new Date().toISOString()))
      this.#writePresence(id)
    })
  }

  #track(p: Promise<unknown>): void {
    const w = p.catch((err: unknown) => this.#deps.log.warn({ err }, 'could not record tunnel connection state')).finally(() => this.#writes.delete(w))
    this.#writes.add(w)
  }

  /**
   * One write at a time per tunnel, each writing what is true when it runs: on a pool, a quick
   * down-and-up could otherwise commit the delete after the insert.
   */
  #writePresence(id: string): void {
    const nodeId = this.#deps.nodeId()
    if (nodeId === undefined) return
    const next = (this.#presenceWrites.get(id) ?? Promise.resolve()).then(() =>
      this.#deps.registry.sessionsOf(id).length > 0 ? this.#deps.presence.add(id, nodeId, new Date().toISOString()) : this.#deps.presence.remove(id, nodeId),
    )
    const settled = next.catch(() => {}).finally(() => {
      if (this.#presenceWrites.get(id) === settled) this.#presenceWrites.delete(id)
    })
    this.#presenceWrites.set(id, settled)
    this.#track(next)
  }

  /** Resolves once every write started so far has finished (before the database closes). */
  async settled(): Promise<void> {
    await Promise.all([...this.#writes])
  }
}
