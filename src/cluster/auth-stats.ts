import { systemClock, type Clock } from './clock.ts'

/**
 * Cluster authentication statistics, as the reference product reports them: per node and per side
 * (server = accepted connections, client = dialled ones), each kept twice — `total` since the node
 * started and `snapshot` since the last stats line.
 *
 * Every handshake ends in exactly one of four outcomes, so
 *   authsTotal = authsSuccess + authsFailed + authsFailedByTimeout + authsSkippedNoSecret.
 * Per the reference, `authsFailed` does not include timeouts. `timeToAuthMillis` covers successful
 * authentications only; times are rounded to the nearest millisecond (so bucket "0" holds the ones
 * under 0.5 ms) and each lands in the first bucket whose upper bound (inclusive) is not below it.
 * Buckets count per bucket, not cumulatively; with no success min, max and avg are 0; avg rounds down.
 */

/** Upper bounds of the distribution buckets, as the JSON keys name them. The last one is Java's Long.MAX_VALUE. */
export const TIME_TO_AUTH_BUCKETS = ['0', '1', '5', '10', '50', '100', '500', '1000', '5000', '9223372036854775807'] as const
const BUCKET_BOUNDS = TIME_TO_AUTH_BUCKETS.map((k, i) => (i === TIME_TO_AUTH_BUCKETS.length - 1 ? Infinity : Number(k)))

export type TimeToAuthBucket = (typeof TIME_TO_AUTH_BUCKETS)[number]

export interface TimeToAuthJson {
  count: number
  min: number
  max: number
  sum: number
  avg: number
  distributionCounter: Record<TimeToAuthBucket, number>
}

export interface AuthStatsJson {
  startTimestampMillis: number
  authsTotal: number
  authsSkippedNoSecret: number
  authsFailed: number
  authsFailedByTimeout: number
  authsSuccess: number
  timeToAuthMillis: TimeToAuthJson
}

/** How a handshake reports its one outcome. */
export interface AuthOutcomeRecorder {
  success(timeToAuthMs: number): void
  failed(): void
  failedByTimeout(): void
  skippedNoSecret(): void
}

/** The bucket key a (rounded) time falls in. */
export function bucketOf(roundedMs: number): TimeToAuthBucket {
  for (let i = 0; i < BUCKET_BOUNDS.length; i++) if (roundedMs <= BUCKET_BOUNDS[i]!) return TIME_TO_AUTH_BUCKETS[i]!
  return TIME_TO_AUTH_BUCKETS[TIME_TO_AUTH_BUCKETS.length - 1]!
}

class Accumulator {
  readonly startTimestampMillis: number
  skipped = 0
  failed = 0
  timedOut = 0
  success = 0
  min = 0
  max = 0
  sum = 0
  readonly buckets = new Array<number>(TIME_TO_AUTH_BUCKETS.length).fill(0)

  constructor(start: number) {
    this.startTimestampMillis = start
  }

  addSuccess(ms: number): void {
    this.min = this.success === 0 ? ms : Math.min(this.min, ms)
    this.max = this.success === 0 ? ms : Math.max(this.max, ms)
    this.success++
    this.sum += ms
    this.buckets[TIME_TO_AUTH_BUCKETS.indexOf(bucketOf(ms))]!++
  }

  toJSON(): AuthStatsJson {
    const distributionCounter = {} as Record<TimeToAuthBucket, number>
    TIME_TO_AUTH_BUCKETS.forEach((k, i) => (distributionCounter[k] = this.buckets[i]!))
    return {
      startTimestampMillis: this.startTimestampMillis,
      authsTotal: this.success + this.failed + this.timedOut + this.skipped,
      authsSkippedNoSecret: this.skipped,
      authsFailed: this.failed,
      authsFailedByTimeout: this.timedOut,
      authsSuccess: this.success,
      timeToAuthMillis: {
        count: this.success,
        min: this.min,
        max: this.max,
        sum: this.sum,
        avg: this.success === 0 ? 0 : Math.floor(this.sum / this.success),
        distributionCounter,
      },
    }
  }
}

/** One side's statistics: a running total and a snapshot that each stats line resets. */
export class AuthStats implements AuthOutcomeRecorder {
  readonly #clock: Clock
  readonly #total: Accumulator
  #snapshot: Accumulator

  constructor(clock: Clock = systemClock) {
    this.#clock = clock
    this.#total = new Accumulator(clock.now())
    this.#snapshot = new Accumulator(clock.now())
  }

  success(timeToAuthMs: number): void {
    const ms = Math.max(0, Math.round(timeToAuthMs))
    this.#total.addSuccess(ms)
    this.#snapshot.addSuccess(ms)
  }

  failed(): void {
    this.#total.failed++
    this.#snapshot.failed++
  }

  failedByTimeout(): void {
    this.#total.timedOut++
    this.#snapshot.timedOut++
  }

  skippedNoSecret(): void {
    this.#total.skipped++
    this.#snapshot.skipped++
  }

  total(): AuthStatsJson {
    return this.#total.toJSON()
  }

  /** The snapshot so far, without starting a new one. */
  peekSnapshot(): AuthStatsJson {
    return this.#snapshot.toJSON()
  }

  /** The snapshot since the last call (or start), and a fresh one from now. */
  takeSnapshot(): AuthStatsJson {
    const taken = this.#snapshot.toJSON()
    this.#snapshot = new Accumulator(this.#clock.now())
    return taken
  }
}

/** A node's statistics: both sides. */
export class ClusterAuthStats {
  readonly server: AuthStats
  readonly client: AuthStats
  readonly #framesRefused = { server: 0, client: 0 }

  constructor(clock: Clock = systemClock) {
    this.server = new AuthStats(clock)
    this.client = new AuthStats(clock)
  }

  /**
   * A bus frame failed its integrity check after the handshake (altered, injected, replayed or
   * reflected), on a link this node accepted (server) or dialled (client). Kept apart from the
   * handshake outcomes above, whose JSON follows the reference's format and sum.
   */
  busFrameRefused(side: 'server' | 'client'): void {
    this.#framesRefused[side]++
  }

  /** bus frames refused since start, per side (each one closed its link) */
  busFramesRefused(): { server: number; client: number } {
    return { ...this.#framesRefused }
  }
}
