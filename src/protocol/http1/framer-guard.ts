import { TunnelError } from '../../errors/index.ts'

/**
 * The call discipline both framers share: their callbacks must not call back into them, and the
 * first error a call throws kills the framer for good (every later call rethrows it), so a
 * connection can never resume parsing from a position that was not understood.
 */
export class FramerGuard {
  readonly #owner: string
  #busy = false
  #failure: { error: unknown } | undefined = undefined

  constructor(owner: string) {
    this.#owner = owner
  }

  /** Rethrows the error that killed the framer, or refuses a call made from inside a callback. */
  check(method: string): void {
    if (this.#failure !== undefined) throw this.#failure.error
    if (this.#busy) throw new TunnelError('TUN_ERR_INTERNAL', `${this.#owner}.${method}() called from inside a callback`)
  }

  /** Runs work with re-entry refused; if it throws, onDeath runs once and the error is rethrown. */
  run(work: () => void, onDeath: () => void): void {
    this.#busy = true
    try {
      work()
    } catch (err) {
      if (this.#failure === undefined) {
        this.#failure = { error: err }
        onDeath()
      }
      throw err
    } finally {
      this.#busy = false
    }
  }
}
