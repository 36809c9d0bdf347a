import { EventEmitter } from 'node:events'
import type { TunnelError } from '../../errors/index.ts'
import type { AgentSession } from './agent-session.ts'

/**
 * Live agent sessions by tunnel. Holds many sessions per tunnel (several nodes, several sessions per
 * node) and hands out the least loaded one.
 *
 * Events: 'tunnel-up' (tunnelId) when a tunnel gets its first live session, 'tunnel-down'
 * (tunnelId) when its last one goes; 'session-added' and 'session-removed' (session) for each.
 */
export class SessionRegistry extends EventEmitter {
  #byTunnel = new Map<string, Set<AgentSession>>()

  add(session: AgentSession): void {
    // A closed session would never leave: its 'closed' has been emitted already.
    if (session.closed) return
    const tunnelId = session.info.tunnelId
    let set = this.#byTunnel.get(tunnelId)
    const first = set === undefined || set.size === 0
    if (set === undefined) {
      set = new Set()
      this.#byTunnel.set(tunnelId, set)
    }
    set.add(session)
    session.once('closed', () => this.#remove(session))
    this.emit('session-added', session)
    if (first) this.emit('tunnel-up', tunnelId)
  }

  #remove(session: AgentSession): void {
    const tunnelId = session.info.tunnelId
    const set = this.#byTunnel.get(tunnelId)
    if (set === undefined || !set.delete(session)) return
    this.emit('session-removed', session)
    if (set.size === 0) {
      this.#byTunnel.delete(tunnelId)
      this.emit('tunnel-down', tunnelId)
    }
  }

  /** The open session with the fewest active relays, or undefined. */
  pick(tunnelId: string): AgentSession | undefined {
    const set = this.#byTunnel.get(tunnelId)
    if (set === undefined) return undefined
    let best: AgentSession | undefined
    for (const s of set) {
      if (!s.isOpen) continue
      if (best === undefined || s.activeStreams < best.activeStreams) best = s
    }
    return best
  }

  /**
   * pick() found nothing because the tunnel is full, not because it is down: some session is live
   * but carries its maximum of relays (a full session is not open for new relays, so pick() skips it).
   */
  isFull(tunnelId: string, maxStreams: number): boolean {
    const set = this.#byTunnel.get(tunnelId)
    if (set === undefined) return false
    for (const s of set) if (s.isFull(maxStreams)) return true
    return false
  }

  isConnected(tunnelId: string): boolean {
    return this.pick(tunnelId) !== undefined
  }

  sessionsOf(tunnelId: string): AgentSession[] {
    return [...(this.#byTunnel.get(tunnelId) ?? [])]
  }

  /** Ends every session of a tunnel now, telling each agent why (revocation). */
  revokeTunnel(tunnelId: string, error: TunnelError): void {
    for (const s of this.sessionsOf(tunnelId)) s.revoke(error)
  }

  /** Every registered session, live or draining (metrics read them when scraped). */
  *all(): IterableIterator<AgentSession> {
    for (const set of this.#byTunnel.values()) yield* set
  }

  get size(): number {
    let n = 0
    for (const set of this.#byTunnel.values()) n += set.size
    return n
  }

  async closeAll(): Promise<void> {
    const all = [...this.#byTunnel.values()].flatMap((s) => [...s])
    await Promise.all(all.map((s) => s.close()))
  }

  destroyAll(): void {
    for (const set of [...this.#byTunnel.values()]) for (const s of [...set]) s.destroy()
  }
}
