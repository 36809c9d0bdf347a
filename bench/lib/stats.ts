/** Small order statistics for benchmark samples (no interpolation: a sample that was measured). */

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

export function sortedCopy(values: Iterable<number>): Float64Array {
  return Float64Array.from(values).sort()
}

export interface Spread {
  median: number
  min: number
  max: number
}

/** Median and range of the per-round results of one figure. */
export function spread(values: number[]): Spread {
  const s = sortedCopy(values)
  if (s.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN }
  const mid = s.length >> 1
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  return { median, min: s[0]!, max: s[s.length - 1]! }
}
