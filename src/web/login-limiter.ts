import { AuthFailureLimiter } from '../security/auth-failure-limiter.ts'

export interface LoginLimiterOptions {
  /** [maxFailuresPerAddress=20] failed sign-ins from one address per window */
  maxFailuresPerAddress?: number
  /** [maxFailuresPerUser=10] failed sign-ins for one user name per window, from anywhere */
  maxFailuresPerUser?: number
  /** [windowMs=900000] the counting window (15 min) */
  windowMs?: number
  now?: () => number
}

/**
 * Failed console sign-ins counted per source address (one guesser) and per user name (many
 * addresses guessing one account), each in a fixed window, with the agent gateway's bounded limiter.
 * A blocked user name also blocks its owner for the rest of the window: the price of stopping a
 * distributed guess, kept short by the window.
 */
export class LoginLimiter {
  readonly #byAddress: AuthFailureLimiter
  readonly #byUser: AuthFailureLimiter
  readonly windowMs: number

  constructor(options: LoginLimiterOptions = {}) {
    this.windowMs = options.windowMs ?? 15 * 60_000
    const common = { windowMs: this.windowMs, ...(options.now === undefined ? {} : { now: options.now }) }
    this.#byAddress = new AuthFailureLimiter({ ...common, maxFailures: options.maxFailuresPerAddress ?? 20 })
    this.#byUser = new AuthFailureLimiter({ ...common, maxFailures: options.maxFailuresPerUser ?? 10 })
  }

  isBlocked(address: string, username: string): boolean {
    return this.#byAddress.isBlocked(address) || this.#byUser.isBlocked(username.toLowerCase())
  }

  recordFailure(address: string, username: string): void {
    this.#byAddress.recordFailure(address)
    this.#byUser.recordFailure(username.toLowerCase())
  }
}
