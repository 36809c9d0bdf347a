import { statusHint } from '../../errors/status-hints.ts'
import type { InstanceKeyRecord, InstanceNodeRecord } from '../../store/index.ts'

/** On-prem statuses (docs/onprem.md): per node CONNECTED | CONNECTING | UNAVAILABLE | ERROR; the instance adds LIMITED. */
export type InstanceStatusName = 'CONNECTED' | 'CONNECTING' | 'LIMITED' | 'UNAVAILABLE' | 'ERROR'

/** Heartbeats a node may miss before it counts as down. */
export const MISSED_HEARTBEATS_DOWN = 3

export interface NodeStatusView {
  id: string
  address: string
  /** null while the instance has no key */
  status: InstanceStatusName | null
  reason: string
  code: string | null
  /** false when the node stopped or stopped sending heartbeats */
  online: boolean
  sessions: number
  sessionsWanted: number
  lastHeartbeat: string
  startedAt: string
  version: string
}

export interface InstanceStatusView {
  /** null while the instance has no key */
  status: InstanceStatusName | null
  reason: string
  /** what the person can do about it: from the cause, with the real server (src/errors/status-hints.ts) */
  hint: string
  /** the cause the hint follows: a node's TUN_ERR_… code or a StatusCause; null without a key */
  cause: string | null
  tunnel: { id: string; name: string | null; connectedTo: string | null; applicationLinkUrl: string | null; serverUrl: string; addedAt: string } | null
  nodes: NodeStatusView[]
}

const NO_KEY_REASON = 'no security key has been added to this instance: run apptunnel key add KEY'

/**
 * What the instance is, from the stored key and the node rows, at `nowMs`. Pure: the CLI, the
 * console and the nodes themselves all answer with this one function.
 */
export function instanceStatus(key: InstanceKeyRecord | undefined, rows: readonly InstanceNodeRecord[], nowMs: number): InstanceStatusView {
  const nodes = rows.map((r) => nodeView(key, r, nowMs))
  const tunnel = key === undefined ? null : { id: key.tunnelId, name: key.tunnelName, connectedTo: key.connectedTo, applicationLinkUrl: key.applicationLinkUrl, serverUrl: key.serverUrl, addedAt: key.addedAt }
  if (key === undefined) return { status: null, reason: NO_KEY_REASON, hint: statusHint({ status: null, cause: 'no-key' }), cause: null, tunnel, nodes }
  const view = (status: InstanceStatusName, reason: string, cause: string | null): InstanceStatusView => ({
    status,
    reason,
    hint: statusHint({ status, cause, serverUrl: key.serverUrl }),
    cause,
    tunnel,
    nodes,
  })
  if (nodes.length === 0) return view('UNAVAILABLE', 'no agent node of this instance is running: start apptunnel agent with this database on each node', 'no-node-running')
  const error = nodes.find((n) => n.online && n.status === 'ERROR')
  if (error !== undefined) return view('ERROR', error.reason, error.code)
  const connected = nodes.filter((n) => n.status === 'CONNECTED')
  const others = nodes.filter((n) => n.status !== 'CONNECTED')
  if (others.length === 0) {
    const sessions = connected.reduce((s, n) => s + n.sessions, 0)
    const who = connected.length === 1 ? `node ${connected[0]!.id} is` : connected.length === 2 ? 'both nodes are' : `all ${connected.length} nodes are`
    return view('CONNECTED', `${who} connected (${plural(sessions, 'session')})`, 'connected')
  }
  const connecting = others.filter((n) => n.status === 'CONNECTING')
  if (connected.length === 0) {
    if (connecting.length > 0) return view('CONNECTING', `${listNodes(connecting)} still connecting: ${connecting[0]!.reason}`, 'nodes-connecting')
    const running = others.find((n) => n.online)
    if (running !== undefined) return view('UNAVAILABLE', running.reason, running.code)
    return view('UNAVAILABLE', `no node is running: ${others.map((n) => `${n.id} (${n.reason})`).join('; ')}`, 'no-node-running')
  }
  if (connecting.length === others.length) return view('CONNECTING', `${connected.length} of ${nodes.length} nodes connected; ${listNodes(connecting)} still connecting`, 'nodes-connecting')
  const down = others.filter((n) => n.status !== 'CONNECTING')
  return view(
    'LIMITED',
    `${connected.length} of ${nodes.length} nodes connected; not connected: ${down.map((n) => `${n.id} (${n.reason})`).join('; ')}. See the cluster nodes view`,
    'nodes-down',
  )
}

function nodeView(key: InstanceKeyRecord | undefined, r: InstanceNodeRecord, nowMs: number): NodeStatusView {
  const silentMs = nowMs - Date.parse(r.heartbeatAt)
  const base = {
    id: r.nodeId,
    address: r.address,
    code: r.code,
    sessions: r.sessions,
    sessionsWanted: r.sessionsWanted,
    lastHeartbeat: r.heartbeatAt,
    startedAt: r.startedAt,
    version: r.version,
  }
  if (r.stoppedAt !== null) {
    return { ...base, status: key === undefined ? null : 'UNAVAILABLE', reason: `node stopped at ${r.stoppedAt}`, code: null, online: false, sessions: 0 }
  }
  if (silentMs > MISSED_HEARTBEATS_DOWN * r.heartbeatMs) {
    return {
      ...base,
      status: key === undefined ? null : 'UNAVAILABLE',
      reason: `node is not responding: no heartbeat for ${Math.round(silentMs / 1000)} s (is it running?)`,
      code: null,
      online: false,
      sessions: 0,
    }
  }
  if (key === undefined) return { ...base, status: null, reason: 'waiting for a security key', online: true }
  if (r.tunnelId !== key.tunnelId || r.status === null) return { ...base, status: 'CONNECTING', reason: 'picking up the security key', online: true }
  const status = isNodeStatus(r.status) ? r.status : 'UNAVAILABLE'
  return { ...base, status, reason: r.reason, online: true }
}

function isNodeStatus(s: string): s is 'CONNECTED' | 'CONNECTING' | 'UNAVAILABLE' | 'ERROR' {
  return s === 'CONNECTED' || s === 'CONNECTING' || s === 'UNAVAILABLE' || s === 'ERROR'
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function listNodes(nodes: readonly NodeStatusView[]): string {
  const ids = nodes.map((n) => n.id).join(', ')
  return nodes.length === 1 ? `node ${ids} is` : `nodes ${ids} are`
}
