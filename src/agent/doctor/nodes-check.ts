import { fail, ok, warn, type Finding } from './doctor-check.ts'
import type { InstanceFacts } from './instance-facts.ts'

/**
 * Check 6: every node registered in the instance database is running. A node that died (silent for
 * three heartbeats) fails the check; one that was stopped on purpose, or runs without being
 * connected, is a warning (checks 2-5 test the same path from this node).
 */
export function checkNodes(facts: InstanceFacts): Finding {
  const nodes = facts.status.nodes
  if (nodes.length === 0) {
    return fail('no agent node has registered in this instance database', 'start apptunnel agent --database DB (with the same database) on each node of the instance')
  }
  const stopped = nodes.filter((n) => !n.online && facts.stoppedNodeIds.has(n.id))
  const down = nodes.filter((n) => !n.online && !facts.stoppedNodeIds.has(n.id))
  const adrift = nodes.filter((n) => n.online && (n.status === 'UNAVAILABLE' || n.status === 'ERROR'))
  const running = nodes.length - stopped.length - down.length
  const parts = [`${running} of ${nodes.length} node${nodes.length === 1 ? '' : 's'} running`]
  if (down.length > 0) parts.push(`down: ${down.map((n) => `${n.id} (${n.reason})`).join('; ')}`)
  if (stopped.length > 0) parts.push(`stopped: ${stopped.map((n) => `${n.id} (${n.reason})`).join('; ')}`)
  if (adrift.length > 0) parts.push(`running but not connected: ${adrift.map((n) => `${n.id} (${n.status}: ${n.reason})`).join('; ')}`)
  const detail = parts.join('; ')
  const retire = 'retire a node that is gone for good with apptunnel cluster node remove ID --database DB'
  if (down.length > 0) return fail(detail, `start the agent again on ${down.map((n) => n.id).join(', ')} (is the host up?); ${retire}`)
  if (stopped.length > 0) return warn(detail, `start the agent again on ${stopped.map((n) => n.id).join(', ')}, or ${retire}`)
  if (adrift.length > 0) return warn(detail, 'the reason says why; run the doctor on those nodes to test their path to the server')
  const sessions = nodes.reduce((s, n) => s + n.sessions, 0)
  return ok(`${detail}, instance ${facts.status.status ?? 'without a key'} (${sessions} session${sessions === 1 ? '' : 's'})`)
}
