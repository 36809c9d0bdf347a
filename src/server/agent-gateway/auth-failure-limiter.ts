/**
 * Counts failed agent authentications per source address in a fixed window, so a key cannot be
 * guessed at line rate and a misconfigured agent cannot hammer the database. Bounded in memory:
 * when too many addresses are tracked the oldest windows are dropped first.
 */
export class AuthFailureLimiter {
  #windows = new Map<string, { startMs: number; failures: number }>()
  readonly maxFailures: number
  readonly windowMs: number
  readonly #now: () => number
  readonly #maxTracked: number

  constructor(options: { maxFailures?: number; windowMs?: number; now?: () => number; maxTracked?: number } = {}) {
    this.maxFailures = options.maxFailures ?? 20
    this.windowMs = options.windowMs ?? 60_000
    this.#now = options.now ?? Date.now
    this.#maxTracked = options.maxTracked ?? 10_000
  }

  isBlocked(address: string): boolean {
    const w = this.#windows.get(address)
    if (w === undefined) return false
    if (this.#now() - w.startMs >= this.windowMs) {
      this.#windows.delete(address)
      return false
    }
    return w.failures >= this.maxFailures
  }

  recordFailure(address: string): void {
    const now = this.#now()
    const w = this.#windows.get(address)
    if (w === undefined || now - w.startMs >= this.windowMs) {
      this.#windows.delete(address)
      if (this.#windows.size >= this.#maxTracked) {
        const oldest = this.#windows.keys().next()
        if (oldest.done !== true) this.#windows.delete(oldest.value)
      }
      this.#windows.set(address, { startMs: now, failures: 1 })
    } else {
      w.failures++
    }
  }
}
