import { TunnelError } from '../errors/index.ts'
import { MAX_CONTROL_PAYLOAD_BYTES } from './session-frame.ts'

/**
 * Messages of the session itself, server → agent, one JSON object per CONTROL frame
 * (session-frame.ts):
 *   - ready: the server has registered the session; the agent may report CONNECTED.
 *   - revoke: the key is no longer valid (e.g. the tunnel was deleted); the agent goes to ERROR and
 *     the server closes the session.
 */
export type ControlMessage = { t: 'ready' } | { t: 'revoke'; code: string; reason: string }

export function encodeControlMessage(m: ControlMessage): Buffer {
  let body = Buffer.from(JSON.stringify(m), 'utf8')
  // A revoke reason is ours, but keep the frame within its limit whatever it says.
  if (body.length > MAX_CONTROL_PAYLOAD_BYTES && m.t === 'revoke') body = Buffer.from(JSON.stringify({ ...m, reason: m.reason.slice(0, 1000) }), 'utf8')
  return body
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
  }
  throw new TunnelError('TUN_ERR_SESSION_PROTOCOL', 'unknown control message')
}
