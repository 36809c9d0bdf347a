import type { NodeStatus } from './connector/node-sessions.ts'

/** A node's status; `status` is null while its instance has no key. */
export type AgentNodeStatus = NodeStatus | { status: null; reason: string; code?: undefined; since: string; sessions: 0; sessionsWanted: 0 }

/**
 * Who hears of a node's status changes: listeners until they unsubscribe, and waiters until their
 * predicate holds or their time runs out (an error that says what the status was then).
 */
export class StatusFeed {
  readonly #current: () => AgentNodeStatus
  readonly #listeners = new Set<(s: AgentNodeStatus) => void>()

  /** `current` is read on every change and by every waiter */
  constructor(current: () => AgentNodeStatus) {
    this.#current = current
  }

  /** the status changed: tells every listener */
  emit(): void {
    const st = this.#current()
    for (const l of [...this.#listeners]) l(st)
  }

  /** returns the function that stops it */
  onStatus(listener: (s: AgentNodeStatus) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** resolves on the first status that satisfies the predicate, the current one included [timeoutMs=10000] */
  waitFor(predicate: (s: AgentNodeStatus) => boolean, timeoutMs = 10_000): Promise<AgentNodeStatus> {
    const current = this.#current()
    if (predicate(current)) return Promise.resolve(current)
    return new Promise((resolve, reject) => {
      const onStatus = (s: AgentNodeStatus): void => {
        if (!predicate(s)) return
        clearTimeout(timer)
        this.#listeners.delete(onStatus)
        resolve(s)
      }
      const timer = setTimeout(() => {
        this.#listeners.delete(onStatus)
        const now = this.#current()
        reject(new Error(`agent status did not match within ${timeoutMs} ms (now ${now.status ?? 'no key'}: ${now.reason})`))
      }, timeoutMs)
      this.#listeners.add(onStatus)
    })
  }
}
