import { setFlagsFromString } from 'node:v8'
import { operatorChose, THIS_PROCESS_FLAGS, type NodeFlags } from './node-flags.ts'

/**
 * V8 starts marking the old generation for a full collection when the room left below its limit is
 * smaller than the young generation's capacity (a scavenge could promote that much). Once V8 has
 * grown a server's young generation under load (to 16 MiB semi-spaces after 50 concurrent callers),
 * that test passes after every scavenge although the old generation does not grow: a server moving
 * a bulk transfer then ran a full mark-compact for about every scavenge, 31–60 per GiB, and paid
 * 2–3 times its CPU per byte (docs/performance.md, "The tunnel's cost per GiB swings within one
 * run"). Without incremental marking V8 collects the old generation when it reaches its limit, as
 * one pause: a server's heap is tens of MiB, so that pause is a few milliseconds, and it comes when
 * the old generation has grown, not after every scavenge. The agent is set the same way: under an
 * upload (the caller's body decrypted by the agent) its young generation grows past the room left
 * below its limit too, and it ran 9–23 full mark-compacts per 256–512 MiB with its old generation
 * at 9 MiB (docs/decisions.md, 54).
 */

/** Node flags by which the operator chose how V8 marks: theirs wins. */
const OPERATOR_FLAG = /--(?:no[-_])?incremental[-_]marking\b/

/**
 * The newest Node line this was measured on. Node 24's V8 sizes the young generation otherwise (up
 * to 64 MiB semi-spaces), and in the test's bulk-like load it runs its full collections for the
 * external memory of the buffers with or without incremental marking; there, marking stays V8's.
 */
const LAST_MEASURED_NODE_MAJOR = 22

/**
 * Turns incremental marking off unless the operator's Node flags chose or Node is newer than
 * measured; returns whether it did.
 */
export function fullCollectionsAtTheLimitOnly(nodeFlags: NodeFlags = THIS_PROCESS_FLAGS, nodeMajor = Number(process.versions.node.split('.')[0])): boolean {
  if (nodeMajor > LAST_MEASURED_NODE_MAJOR || operatorChose(OPERATOR_FLAG, nodeFlags)) return false
  setFlagsFromString('--no-incremental-marking')
  return true
}
