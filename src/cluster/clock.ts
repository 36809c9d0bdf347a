/** Wall-clock milliseconds, injectable so minute-scale timings (grace, WARN rate limits) test instantly. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }
