/**
 * Jittered exponential back-off. The first retry comes within `initialMs` (default 500 ms, so
 * within a second), each next one doubles up to `maxMs` (default 30 s); jitter spreads a fleet of
 * agents that lost the same server so they do not return in one wave.
 */
export class Backoff {
  readonly #initialMs: number
  readonly #maxMs: number
  readonly #random: () => number
  #attempt = 0

  constructor(options: { initialMs?: number; maxMs?: number; random?: () => number } = {}) {
    this.#initialMs = options.initialMs ?? 500
    this.#maxMs = options.maxMs ?? 30_000
    this.#random = options.random ?? Math.random
  }

  /** Delay before the next attempt: between half and all of the current step. */
  next(): number {
    const step = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 30))
    this.#attempt++
    return Math.round(step / 2 + (this.#random() * step) / 2)
  }

  reset(): void {
    this.#attempt = 0
  }

  get attempts(): number {
    return this.#attempt
  }
}
