import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { operatorChose, THIS_PROCESS_FLAGS, type NodeFlags } from './node-flags.ts'

/**
 * V8 grows its young generation (two semi-spaces, 1 MiB together at start, up to 32 MiB on Node 20,
 * 64 on Node 24) whenever many objects survive a scavenge, and hands the space back only after a
 * long idle spell.
 * Start-up is such a time: loading the bundle, migrating the store, making a certificate. A server
 * and an agent then sat idle holding 8 and 6 MiB of young generation grown for a start-up that is
 * over (decision 49). `--max-semi-space-size` would cap it, but only given at start, so a user would
 * have to know it; V8 reads `--semi-space-growth-factor` each time it grows the space, though, so
 * the process holds the space at its start size while it starts, then lets V8 size it for the
 * traffic, up to a ceiling of half V8's own.
 */

/** Node flags by which the operator chose the young generation's size: theirs wins. */
const OPERATOR_FLAG = /--(?:max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/

let holding = false

/**
 * Holds the young generation at its start size until youngGenerationMayGrow(). Does nothing when
 * the operator sized the young generation with a Node flag; returns whether it holds.
 */
export function holdYoungGenerationWhileStarting(nodeFlags: NodeFlags = THIS_PROCESS_FLAGS): boolean {
  if (holding || operatorChose(OPERATOR_FLAG, nodeFlags)) return false
  setFlagsFromString('--semi-space-growth-factor=1')
  holding = true
  return true
}

/**
 * Where the young generation stops growing once started: 16 MiB, semi-spaces of 8 (V8's own
 * ceiling is 32 MiB on Node 20). Under load the server grew to its ceiling and held it; 8 MiB
 * semi-spaces cost no more CPU per request or per byte than 16 and keep ~14 MiB less
 * (docs/performance.md, "A ceiling on the server's young generation").
 */
export const STARTED_YOUNG_GENERATION_MAX_BYTES = 16 * 2 ** 20

let capObserver: PerformanceObserver | undefined

function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
}

/**
 * The process started (a server listens, an agent runs): V8 sizes the young generation for the
 * traffic again, up to STARTED_YOUNG_GENERATION_MAX_BYTES. V8 doubles the space at a scavenge;
 * the check runs after each one, and once the space reached the ceiling the factor goes back to 1
 * and the check stops. The ceiling is soft: GC entries reach observers one or two turns of the
 * event loop after the collection, and a burst that makes two growing scavenges before then takes
 * the space to V8's own ceiling, where it went before.
 */
export function youngGenerationMayGrow(): void {
  if (!holding) return
  holding = false
  if (youngGenerationBytes() >= STARTED_YOUNG_GENERATION_MAX_BYTES) return
  // V8's default factor.
  setFlagsFromString('--semi-space-growth-factor=2')
  capObserver = new PerformanceObserver(() => {
    if (youngGenerationBytes() < STARTED_YOUNG_GENERATION_MAX_BYTES) return
    setFlagsFromString('--semi-space-growth-factor=1')
    capObserver?.disconnect()
    capObserver = undefined
  })
  capObserver.observe({ entryTypes: ['gc'] })
}
