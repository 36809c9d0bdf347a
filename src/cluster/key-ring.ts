import { deriveClusterKey, type ClusterKey } from './auth/auth-transcript.ts'
import type { ClusterAuthMode } from './auth/cluster-auth-mode.ts'
import type { HandshakeKeys } from './auth/handshake-keys.ts'
import { systemClock, type Clock } from './clock.ts'

export interface KeyRingState {
  mode: ClusterAuthMode
  /** hex id of the current key */
  kid: string | null
  /** hex id of the previous key while it is still accepted */
  previousKid: string | null
  /** when the previous key stops being accepted (ms since the epoch), or null */
  previousAcceptedUntil: number | null
}

export interface KeyChange {
  mode: ClusterAuthMode
  kid: string | null
  previousKid: string | null
}

/**
 * The keys one node accepts, and how they rotate. Pure state: the key supplier feeds it what the
 * database holds, the handshakes ask it which key to use and which to accept.
 *
 *            adopt(S1)                 adopt(S2)                     clock ≥ graceUntil
 *   no-key ────────────▶ enabled{S1} ────────────▶ enabled{S2, prev S1} ───────────────▶ enabled{S2}
 *      │                    │  ▲                          │
 *      │ adopt('')          │  └──── adopt(S3) ───────────┘ (prev becomes S2: only one previous key)
 *      ▼                    ▼ adopt('')
 *   disabled-at-run-time ◀──┘            (no grace from "disabled" to a key: there is no key to grace,
 *      │                                  and accepting "no secret" for a while would be a downgrade)
 *      └── adopt(S) ──▶ enabled{S}
 */
export class KeyRing implements HandshakeKeys {
  readonly #disabledAtStart: boolean
  readonly #graceMs: number
  readonly #clock: Clock
  /** the value last adopted: undefined = nothing yet, '' = disabled at run time */
  #secret: string | undefined
  #current: ClusterKey | undefined
  #previous: { secret: string; key: ClusterKey } | undefined
  #graceUntil = 0

  constructor(options: { disabledAtStart?: boolean; graceMs: number; clock?: Clock }) {
    this.#disabledAtStart = options.disabledAtStart ?? false
    this.#graceMs = options.graceMs
    this.#clock = options.clock ?? systemClock
  }

  get mode(): ClusterAuthMode {
    if (this.#disabledAtStart) return 'disabled-at-start'
    if (this.#secret === undefined) return 'no-key'
    return this.#secret === '' ? 'disabled-at-run-time' : 'enabled'
  }

  get graceMs(): number {
    return this.#graceMs
  }

  /** Takes the value the key row holds now; returns what changed, or undefined when nothing did. */
  adopt(secret: string): KeyChange | undefined {
    if (this.#disabledAtStart || secret === this.#secret) return undefined
    if (secret === '') {
      // An operator switched authentication off: no key is kept, so switching it back on later
      // cannot resurrect a key that was meant to be gone.
      this.#current = undefined
      this.#previous = undefined
    } else {
      const returning = this.#previous?.secret === secret ? this.#previous.key : undefined
      const next = returning ?? deriveClusterKey(secret)
      if (this.#current !== undefined && this.#secret !== undefined && this.#secret !== '') {
        this.#previous = { secret: this.#secret, key: this.#current }
        this.#graceUntil = this.#clock.now() + this.#graceMs
      } else {
        this.#previous = undefined
      }
      this.#current = next
    }
    this.#secret = secret
    return { mode: this.mode, kid: this.#current?.kidHex ?? null, previousKid: this.#livePrevious()?.kidHex ?? null }
  }

  /** The key this node proves with when it has no reason to pick another. */
  current(): ClusterKey | undefined {
    return this.mode === 'enabled' ? this.#current : undefined
  }

  /** The key named by `kid` if this node accepts it now: the current one, or the previous one within its grace. */
  accepted(kid: Buffer): ClusterKey | undefined {
    if (this.mode !== 'enabled') return undefined
    if (this.#current !== undefined && this.#current.kid.equals(kid)) return this.#current
    const previous = this.#livePrevious()
    return previous !== undefined && previous.kid.equals(kid) ? previous : undefined
  }

  /** Whether a link authenticated with `kidHex` may stay open: its key must still be accepted. */
  stillAccepts(kidHex: string): boolean {
    if (this.mode === 'disabled-at-run-time') return true
    if (this.mode !== 'enabled') return false
    return this.#current?.kidHex === kidHex || this.#livePrevious()?.kidHex === kidHex
  }

  /** A bare ring has no database to re-read: the key supplier overrides this by wrapping the ring. */
  peerSuggestsKeyChange(): void {}

  authSkipped(): void {}

  state(): KeyRingState {
    const previous = this.#livePrevious()
    return {
      mode: this.mode,
      kid: this.current()?.kidHex ?? null,
      previousKid: previous?.kidHex ?? null,
      previousAcceptedUntil: previous === undefined ? null : this.#graceUntil,
    }
  }

  #livePrevious(): ClusterKey | undefined {
    if (this.#previous === undefined) return undefined
    if (this.#clock.now() >= this.#graceUntil) {
      this.#previous = undefined
      return undefined
    }
    return this.#previous.key
  }
}
