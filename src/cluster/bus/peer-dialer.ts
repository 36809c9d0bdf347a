import { isTunnelError } from '../../errors/index.ts'
import { Backoff } from '../../transport/backoff.ts'
import type { Logger } from '../../observability/index.ts'
import type { PeerAddress } from './membership.ts'
import type { PeerLink } from './peer-link.ts'

export interface RedialOptions {
  /** first redial within this, in ms (jittered) */
  initialMs: number
  /** the longest wait between attempts, in ms */
  maxMs: number
}

/**
 * Keeps one outbound link to one peer: dial, authenticate, and when the link drops or an attempt
 * fails, dial again after a jittered exponential back-off (reset by every success).
 *
 *   idle ──start──▶ dialling ──ok──▶ linked ──link closed──▶ waiting ──timer──▶ dialling …
 *                      └──failed──────────────────────────────▲
 */
export class PeerDialer {
  #peer: PeerAddress
  readonly #connect: (peer: PeerAddress) => Promise<PeerLink>
  readonly #log: Logger
  readonly #backoff: Backoff
  #timer: NodeJS.Timeout | undefined
  #dialing: Promise<void> | undefined
  #stopped = false
  #lastErrorCode: string | undefined

  constructor(peer: PeerAddress, options: RedialOptions, deps: { connect: (peer: PeerAddress) => Promise<PeerLink>; log: Logger }) {
    this.#peer = peer
    this.#backoff = new Backoff({ initialMs: options.initialMs, maxMs: options.maxMs })
    this.#connect = deps.connect
    this.#log = deps.log
  }

  get peerId(): string {
    return this.#peer.id
  }

  /** A restarted peer may come back at another address; the next attempt uses the newest. */
  setAddress(address: string): void {
    this.#peer = { ...this.#peer, address }
  }

  start(): void {
    this.#dial()
  }

  /** Stops redialling; resolves once an attempt in flight has settled (the bus destroys its socket). */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#dialing
  }

  #dial(): void {
    if (this.#stopped) return
    this.#timer = undefined
    this.#dialing = this.#connect(this.#peer).then(
      (link) => {
        this.#backoff.reset()
        this.#lastErrorCode = undefined
        link.once('close', () => this.#retryLater())
      },
      (err: unknown) => {
        const code = isTunnelError(err) ? err.code : 'unknown'
        // The first failure of a kind is worth a line; the same failure every few seconds is not.
        if (code !== this.#lastErrorCode && !this.#stopped) {
          this.#log.info({ peerId: this.#peer.id, address: this.#peer.address, code, reason: (err as Error).message }, 'cannot link to cluster peer; retrying')
        }
        this.#lastErrorCode = code
        this.#retryLater()
      },
    )
  }

  #retryLater(): void {
    if (this.#stopped || this.#timer !== undefined) return
    this.#timer = setTimeout(() => this.#dial(), this.#backoff.next())
  }
}
