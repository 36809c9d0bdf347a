import type { Logger } from '../observability/index.ts'
import { fitReplicaList, type ReplicaEndpoint } from '../protocol/index.ts'
import type { ClusterNodeRecord } from '../store/index.ts'

/**
 * The replicas agents may dial: this node and the live members that have held a bus link with it
 * (so a row written into the database alone cannot send agents, and their secrets, elsewhere; a
 * link that drops for a moment does not take a replica off the list), each with an agent
 * endpoint, cut to what one control message carries. Listeners hear of each change, and only then.
 */
export class ReplicaList {
  readonly #selfId: string
  readonly #log: Logger
  #replicas: ReplicaEndpoint[] = []
  #members: ClusterNodeRecord[] = []
  readonly #authenticated = new Set<string>()
  readonly #listeners = new Set<(r: ReplicaEndpoint[]) => void>()

  constructor(selfId: string, deps: { log: Logger }) {
    this.#selfId = selfId
    this.#log = deps.log
  }

  get current(): ReplicaEndpoint[] {
    return this.#replicas
  }

  /** the live members, as the membership last read them; a member gone forgets its link */
  membersChanged(live: ClusterNodeRecord[]): void {
    this.#members = live
    for (const id of [...this.#authenticated]) if (!live.some((m) => m.id === id)) this.#authenticated.delete(id)
    this.#update()
  }

  /** a bus link with this peer proved the cluster key */
  linkUp(peerId: string): void {
    this.#authenticated.add(peerId)
    this.#update()
  }

  /** returns the unsubscribe function */
  onChange(listener: (r: ReplicaEndpoint[]) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #update(): void {
    const all = this.#members
      .filter((m) => m.agentEndpoint !== null && (m.id === this.#selfId || this.#authenticated.has(m.id)))
      .map((m): ReplicaEndpoint => ({ id: m.id, url: m.agentEndpoint!.url, ...(m.agentEndpoint!.pin === undefined ? {} : { pin: m.agentEndpoint!.pin }) }))
    const next = fitReplicaList(this.#selfId, all)
    if (JSON.stringify(next) === JSON.stringify(this.#replicas)) return
    if (next.length < all.length) this.#log.warn({ replicas: all.length, announced: next.length }, 'more replicas than one control message holds; agents are told of the first')
    this.#replicas = next
    for (const l of [...this.#listeners]) l(next)
  }
}
