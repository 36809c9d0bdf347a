import type { ReadinessCheck } from '../observability/metrics/index.ts'

/** Runs every readiness check: the names of those that fail, with why. */
export async function failingChecks(checks: readonly ReadinessCheck[]): Promise<string[]> {
  const out: string[] = []
  for (const c of checks) {
    try {
      await c.check()
    } catch (err) {
      out.push(`${c.name}: ${(err as Error).message}`)
    }
  }
  return out
}
