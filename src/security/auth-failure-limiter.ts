/**
 * Counts failed authentications per key (a source address, or a user name) in a fixed window, so a
 * secret cannot be guessed at line rate and a misconfigured client cannot hammer the database.
 * Shared by the agent endpoint, the admin API's tokens and the consoles' sign-in. Bounded in
 * memory: when too many keys are tracked the oldest windows are dropped first.
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
