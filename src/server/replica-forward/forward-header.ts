import { isIP } from 'node:net'
import { TunnelError } from '../../errors/index.ts'

/**
 * The one message a forwarding replica sends after the cluster handshake, before the caller's
 * bytes: which tunnel the caller asked for and the caller's own address. A 2-byte length, then
 * JSON {"t": tunnel id, "a": caller address}. It is believed because only a node that proved the
 * cluster key with FLAG_FORWARD can get this far (docs/security.md).
 */
export interface ForwardHeader {
  tunnelId: string
  clientAddress: string
}

export const MAX_FORWARD_HEADER_BYTES = 512
/**
 * The one byte the receiving replica sends before anything else once its ingress has taken the
 * connection. A connection that closes before it was never served, so the forwarding replica may
 * try elsewhere whatever the request was.
 */
export const FORWARD_ACCEPTED = Buffer.of(0x01)
const TUNNEL_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

export function encodeForwardHeader(h: ForwardHeader): Buffer {
  const json = Buffer.from(JSON.stringify({ t: h.tunnelId, a: h.clientAddress }), 'utf8')
  if (json.length > MAX_FORWARD_HEADER_BYTES) throw new TypeError('forward header too long')
  const out = Buffer.allocUnsafe(2 + json.length)
  out.writeUInt16BE(json.length, 0)
  json.copy(out, 2)
  return out
}

/** The header and the bytes behind it, or undefined while incomplete. Throws on anything malformed. */
export function decodeForwardHeader(buf: Buffer): { header: ForwardHeader; rest: Buffer } | undefined {
  if (buf.length < 2) return undefined
  const length = buf.readUInt16BE(0)
  if (length === 0 || length > MAX_FORWARD_HEADER_BYTES) throw malformed(`a forward header of ${length} bytes`)
  if (buf.length < 2 + length) return undefined
  let v: unknown
  try {
    v = JSON.parse(buf.subarray(2, 2 + length).toString('utf8'))
  } catch {
    throw malformed('a forward header that is not JSON')
  }
  const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
  const tunnelId = m['t']
  const clientAddress = m['a']
  if (typeof tunnelId !== 'string' || !TUNNEL_ID.test(tunnelId)) throw malformed('a forward header without a valid tunnel id')
  if (typeof clientAddress !== 'string' || isIP(clientAddress) === 0) throw malformed('a forward header without a valid caller address')
  return { header: { tunnelId, clientAddress }, rest: buf.subarray(2 + length) }
}

function malformed(what: string): TunnelError {
  return new TunnelError('TUN_ERR_CLUSTER_BUS_PROTOCOL', `the forwarding replica sent ${what}`)
}
