import { setFlagsFromString } from 'node:v8'
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
 * traffic as before: the data path runs as it did.
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

/** The process started (a server listens, an agent runs): V8 sizes the young generation again. */
export function youngGenerationMayGrow(): void {
  if (!holding) return
  // V8's default factor.
  setFlagsFromString('--semi-space-growth-factor=2')
  holding = false
}
