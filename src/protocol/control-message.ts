import { TunnelError } from '../errors/index.ts'
import { isCanonicalPin } from './security-key.ts'
import { MAX_CONTROL_PAYLOAD_BYTES } from './session-frame.ts'

/** A tunnel server replica as an agent may dial it directly. */
export interface ReplicaEndpoint {
  /** the replica's cluster node id */
  id: string
  /** its agent endpoint, an https origin */
  url: string
  /** base64url SHA-256 of its certificate's SubjectPublicKeyInfo, for a self-signed replica */
  pin?: string
}

/**
 * Messages of the session itself, server → agent, one JSON object per CONTROL frame
 * (session-frame.ts):
 *   - ready: the server has registered the session; the agent may report CONNECTED.
 *   - revoke: the key is no longer valid (e.g. the tunnel was deleted); the agent goes to ERROR and
 *     the server closes the session.
 *   - replicas: the live tunnel server replicas (`self` is the one this session is on), sent after
 *     ready and whenever the list changes; the agent keeps sessions to each (docs/scaling.md).
 */
export type ControlMessage =
  | { t: 'ready' }
  | { t: 'revoke'; code: string; reason: string }
  | { t: 'replicas'; self: string; replicas: ReplicaEndpoint[] }

/** Replicas one message names at most; it keeps a message well inside one CONTROL frame. */
export const MAX_REPLICAS = 32

const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/

/**
 * The replicas that fit in one CONTROL frame, `self` first: a list too long for the frame would be
 * refused by every agent (and drop every session), so the sender cuts it instead.
 */
export function fitReplicaList(self: string, replicas: readonly ReplicaEndpoint[]): ReplicaEndpoint[] {
  const ordered = [...replicas.filter((r) => r.id === self), ...replicas.filter((r) => r.id !== self)].slice(0, MAX_REPLICAS)
  const out: ReplicaEndpoint[] = []
  for (const r of ordered) {
    if (encodeControlMessage({ t: 'replicas', self, replicas: [...out, r] }).length > MAX_CONTROL_PAYLOAD_BYTES) break
    out.push(r)
  }
  return out
}

export function encodeControlMessage(m: ControlMessage): Buffer {
  let body = Buffer.from(JSON.stringify(m), 'utf8')
  // A revoke reason is ours, but keep the frame within its limit whatever it says.
  if (body.length > MAX_CONTROL_PAYLOAD_BYTES && m.t === 'revoke') body = Buffer.from(JSON.stringify({ ...m, reason: m.reason.slice(0, 1000) }), 'utf8')
  return body
}

function invalid(why: string): TunnelError {
  return new TunnelError('TUN_ERR_SESSION_PROTOCOL', `invalid replicas message: ${why}`)
}

/** An https origin, or undefined. */
function httpsOrigin(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > 300) return undefined
  try {
    const u = new URL(v)
    return u.protocol === 'https:' && u.origin === v ? v : undefined
  } catch {
    return undefined
  }
}

function replicaList(m: Record<string, unknown>): ControlMessage {
  const self = m['self']
  if (typeof self !== 'string' || !NODE_ID_PATTERN.test(self)) throw invalid('self must be a node id')
  const list = m['replicas']
  if (!Array.isArray(list) || list.length > MAX_REPLICAS) throw invalid(`replicas must be a list of at most ${MAX_REPLICAS}`)
  const seen = new Set<string>()
  const replicas = list.map((r: unknown): ReplicaEndpoint => {
    const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>
    const id = o['id']
    if (typeof id !== 'string' || !NODE_ID_PATTERN.test(id)) throw invalid('a replica id is not a node id')
    if (seen.has(id)) throw invalid(`replica ${id} is listed twice`)
    seen.add(id)
    const url = httpsOrigin(o['url'])
    if (url === undefined) throw invalid(`replica ${id} has no https origin`)
    const pin = o['pin']
    if (pin === undefined) return { id, url }
    if (typeof pin !== 'string' || !isCanonicalPin(pin)) throw invalid(`replica ${id} has an invalid certificate pin`)
    return { id, url, pin }
  })
  return { t: 'replicas', self, replicas }
}

/** Reads one CONTROL payload; throws TUN_ERR_SESSION_PROTOCOL on anything but a known message. */
export function decodeControlMessage(payload: Buffer): ControlMessage {
  let v: unknown
  try {
    v = JSON.parse(payload.toString('utf8'))
  } catch {
    throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'control message is not JSON')
  }
  if (typeof v === 'object' && v !== null) {
    const m = v as Record<string, unknown>
    if (m['t'] === 'ready') return { t: 'ready' }
    if (m['t'] === 'revoke' && typeof m['code'] === 'string' && typeof m['reason'] === 'string') {
      return { t: 'revoke', code: m['code'], reason: m['reason'] }
    }
    if (m['t'] === 'replicas') return replicaList(m)
  }
  throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'unknown control message')
}
