import { systemClock, type Clock } from '../../cluster/clock.ts'

/** Keys remembered before old ones are swept: bounds the memory a flood of distinct keys can take. */
const SWEEP_AT = 1024

/**
 * Lets one event per key through per interval (a warning per tunnel per minute): an app that
 * misbehaves on every connection must not flood the log, yet its operator must hear of it.
 */
export class OncePerInterval {
  readonly #intervalMs: number
  readonly #clock: Clock
  readonly #last = new Map<string, number>()

  constructor(intervalMs: number, clock: Clock = systemClock) {
    this.#intervalMs = intervalMs
    this.#clock = clock
  }

  /** True when nothing for key was let through within the interval (and records this one). */
  take(key: string): boolean {
    const now = this.#clock.now()
    const last = this.#last.get(key)
    if (last !== undefined && now - last < this.#intervalMs) return false
    if (last === undefined && this.#last.size >= SWEEP_AT) {
      for (const [k, at] of this.#last) if (now - at >= this.#intervalMs) this.#last.delete(k)
    }
    this.#last.set(key, now)
    return true
  }

  /** Keys held now (for tests of the sweep). */
  get size(): number {
    return this.#last.size
  }
}
