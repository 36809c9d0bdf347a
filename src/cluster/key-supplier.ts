import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { TunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import type { SecurityPropertyRepository } from '../store/index.ts'
import type { ClusterKey } from './auth/auth-transcript.ts'
import type { HandshakeKeys } from './auth/handshake-keys.ts'
import { systemClock, type Clock } from './clock.ts'
import type { ClusterAuthMode } from './auth/cluster-auth-mode.ts'
import { KeyRing, type KeyChange, type KeyRingState } from './key-ring.ts'

/** The `security_property` row that holds the cluster authentication key. */
export const CLUSTER_KEY_PROPERTY = 'cluster.auth.secret.key'

/** Bytes of a generated key (stored base64url, 43 characters). */
export const GENERATED_KEY_BYTES = 32

export interface KeySupplierOptions {
  /** `--cluster-auth-disabled`: never read a key, skip every handshake */
  disabledAtStart: boolean
  /** how often the key row is read, in ms; each wait is drawn from 80-100 % of it so "within a minute" holds [60000] */
  pollIntervalMs: number
  /** how long the previous key stays accepted after a new one appears, in ms */
  graceMs: number
  /** the "authentication disabled" WARN repeats at most this often, in ms */
  warnIntervalMs: number
  /** false for read-only users (the probe): a missing row is an error, never generated [true] */
  generate?: boolean
  /** on-demand re-reads (a peer named an unknown key) are spaced at least this far apart, in ms [2000] */
  refreshMinIntervalMs?: number
}

export interface KeySupplierDeps {
  properties: SecurityPropertyRepository
  log: Logger
  clock?: Clock
  random?: (bytes: number) => Buffer
}

export type KeyChangeEvent = KeyChange & { generated: boolean }

/**
 * Supplies the cluster key from the database and keeps it current:
 *
 * - a missing row is filled with 32 random bytes, insert-if-absent, then read back, so nodes that
 *   start together all adopt whichever insert won;
 * - the row is re-read every poll interval, and soon after a peer hints that keys differ;
 * - a new value becomes current and the old one stays accepted for the grace period (KeyRing);
 * - an empty value switches authentication off at run time, with a rate-limited WARN;
 * - a failed read keeps the keys it has: losing the database never turns authentication off.
 *
 * Emits 'change' (KeyChangeEvent) whenever what it accepts changes, and 'previous-expired' (kid)
 * when the grace of a previous key ends.
 */
export class ClusterKeySupplier extends EventEmitter implements HandshakeKeys {
  readonly #options: KeySupplierOptions
  readonly #deps: KeySupplierDeps
  readonly #log: Logger
  readonly #clock: Clock
  readonly #ring: KeyRing
  #pollTimer: NodeJS.Timeout | undefined
  #graceTimer: NodeJS.Timeout | undefined
  #spacingTimer: NodeJS.Timeout | undefined
  #inFlight: Promise<void> | undefined
  #queued: Promise<void> | undefined
  #lastRefreshAt = -Infinity
  #closed = false
  #lastWarnAt = -Infinity
  #warnings = 0
  #suppressed = 0

  constructor(options: KeySupplierOptions, deps: KeySupplierDeps) {
    super()
    this.#options = options
    this.#deps = deps
    this.#log = deps.log
    this.#clock = deps.clock ?? systemClock
    this.#ring = new KeyRing({ disabledAtStart: options.disabledAtStart, graceMs: options.graceMs, clock: this.#clock })
  }

  /** Loads the key (generating it if this node is first) and starts polling. Throws if the database cannot be read. */
  async start(): Promise<void> {
    if (this.#options.disabledAtStart) {
      this.#log.warn({ flag: '--cluster-auth-disabled' }, 'cluster authentication disabled at start: for troubleshooting only, the cluster bus accepts any peer')
      return
    }
    await this.refresh()
    this.#schedulePoll()
  }

  get mode(): ClusterAuthMode {
    return this.#ring.mode
  }

  current(): ClusterKey | undefined {
    return this.#ring.current()
  }

  accepted(kid: Buffer): ClusterKey | undefined {
    return this.#ring.accepted(kid)
  }

  stillAccepts(kidHex: string): boolean {
    return this.#ring.stillAccepts(kidHex)
  }

  state(): KeyRingState {
    return this.#ring.state()
  }

  peerSuggestsKeyChange(): void {
    this.requestRefresh()
  }

  authSkipped(): void {
    if (this.#ring.mode === 'disabled-at-run-time') this.#warnDisabled()
  }

  /** Reads the key row now. One read at a time: a call during a read gets one shared read after it. */
  refresh(): Promise<void> {
    if (this.#options.disabledAtStart || this.#closed) return Promise.resolve()
    if (this.#inFlight !== undefined) {
      this.#queued ??= this.#inFlight
        .catch(() => {})
        .then(() => {
          this.#queued = undefined
          return this.refresh()
        })
      return this.#queued
    }
    this.#lastRefreshAt = this.#clock.now()
    this.#inFlight = this.#load().finally(() => {
      this.#inFlight = undefined
    })
    return this.#inFlight
  }

  /** A re-read soon, at most one per `refreshMinIntervalMs`; requests in between share one trailing read. */
  requestRefresh(): void {
    if (this.#options.disabledAtStart || this.#closed || this.#spacingTimer !== undefined || this.#queued !== undefined) return
    const run = (): void => {
      this.#spacingTimer = undefined
      this.refresh().catch((err: unknown) => this.#log.warn({ err }, 'cluster key refresh failed; keeping the keys this node has'))
    }
    // A read already running may have started before the change it is asked about: queue one after it.
    if (this.#inFlight !== undefined) return run()
    const wait = this.#lastRefreshAt + (this.#options.refreshMinIntervalMs ?? 2000) - this.#clock.now()
    if (wait <= 0) run()
    else this.#spacingTimer = setTimeout(run, wait)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#pollTimer)
    clearTimeout(this.#graceTimer)
    clearTimeout(this.#spacingTimer)
    this.#spacingTimer = undefined
    await this.#inFlight?.catch(() => {})
    await this.#queued?.catch(() => {})
  }

  async #load(): Promise<void> {
    const properties = this.#deps.properties
    let value = await properties.get(CLUSTER_KEY_PROPERTY)
    let generated = false
    if (value === undefined) {
      if (this.#options.generate === false) {
        throw new TunnelError('TUN_ERR_CLUSTER_KEY_UNAVAILABLE', `there is no cluster key in the database yet (security_property ${CLUSTER_KEY_PROPERTY}): start a node with --cluster-listen first`)
      }
      const fresh = (this.#deps.random ?? randomBytes)(GENERATED_KEY_BYTES).toString('base64url')
      generated = await properties.insertIfAbsent(CLUSTER_KEY_PROPERTY, fresh)
      // Read back rather than trust our own value: another node may have won the insert.
      value = await properties.get(CLUSTER_KEY_PROPERTY)
      if (value === undefined) return // deleted again at once; the next read generates anew
    }
    if (this.#closed) return
    const change = this.#ring.adopt(value)
    if (change !== undefined) {
      if (change.mode === 'enabled') {
        this.#log.info({ kid: change.kid, previousKid: change.previousKid, graceMs: this.#ring.graceMs, generated }, generated ? 'generated a new cluster key' : 'adopted the cluster key')
      }
      this.emit('change', { ...change, generated } satisfies KeyChangeEvent)
      this.#armGraceTimer()
    }
    if (value === '') this.#warnDisabled()
  }

  #armGraceTimer(): void {
    clearTimeout(this.#graceTimer)
    const { previousKid, previousAcceptedUntil } = this.#ring.state()
    if (previousKid === null || previousAcceptedUntil === null || this.#closed) return
    this.#graceTimer = setTimeout(() => this.emit('previous-expired', previousKid), Math.max(0, previousAcceptedUntil - this.#clock.now()))
  }

  #schedulePoll(): void {
    if (this.#closed) return
    const interval = this.#options.pollIntervalMs
    const wait = Math.round(interval * (0.8 + 0.2 * Math.random()))
    this.#pollTimer = setTimeout(() => {
      this.refresh()
        .catch((err: unknown) => this.#log.warn({ err }, 'cluster key refresh failed; keeping the keys this node has'))
        .finally(() => this.#schedulePoll())
    }, wait)
  }

  #warnDisabled(): void {
    const now = this.#clock.now()
    if (now - this.#lastWarnAt < this.#options.warnIntervalMs) {
      this.#suppressed++
      return
    }
    this.#lastWarnAt = now
    this.#warnings++
    this.#log.warn(
      { property: CLUSTER_KEY_PROPERTY, warningCounter: this.#warnings, suppressedSinceLastWarning: this.#suppressed, warnIntervalMs: this.#options.warnIntervalMs },
      'cluster authentication disabled due to an empty cluster key in security_property; delete the row to generate a new key and re-enable it',
    )
    this.#suppressed = 0
  }
}
