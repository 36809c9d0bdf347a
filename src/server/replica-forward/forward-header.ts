import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { TunnelError } from '../../errors/index.ts'

/**
 * The one message a forwarding replica sends after the cluster handshake, before the caller's
 * bytes: which tunnel the caller asked for and the caller's own address. A 2-byte length, then
 * JSON {"t": tunnel id, "a": caller address}, then an HMAC-SHA256 of both under the connection's
 * client-to-server key from the handshake. The handshake alone proves who dialled, not what came
 * after it: without the MAC someone on the path could let a genuine handshake through and then
 * write a caller address of their choosing, past every source-address policy.
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
export const FORWARD_HEADER_MAC_BYTES = 32
const MAC_LABEL = Buffer.from('apptunnel/forward-header/1', 'latin1')

function headerMac(key: KeyObject, lengthAndJson: Uint8Array): Buffer {
  return createHmac('sha256', key).update(MAC_LABEL).update(lengthAndJson).digest()
}

/** `key`: the forwarding side's send key of this connection (LinkKeys.send). */
export function encodeForwardHeader(h: ForwardHeader, key: KeyObject): Buffer {
  const json = Buffer.from(JSON.stringify({ t: h.tunnelId, a: h.clientAddress }), 'utf8')
  if (json.length > MAX_FORWARD_HEADER_BYTES) throw new TypeError('forward header too long')
  const out = Buffer.allocUnsafe(2 + json.length + FORWARD_HEADER_MAC_BYTES)
  out.writeUInt16BE(json.length, 0)
  json.copy(out, 2)
  headerMac(key, out.subarray(0, 2 + json.length)).copy(out, 2 + json.length)
  return out
}

/**
 * The header and the bytes behind it, or undefined while incomplete. Throws on anything malformed,
 * and on a MAC that does not verify under `key` (the receiving side's LinkKeys.receive).
 */
export function decodeForwardHeader(buf: Buffer, key: KeyObject): { header: ForwardHeader; rest: Buffer } | undefined {
  if (buf.length < 2) return undefined
  const length = buf.readUInt16BE(0)
  if (length === 0 || length > MAX_FORWARD_HEADER_BYTES) throw malformed(`a forward header of ${length} bytes`)
  if (buf.length < 2 + length + FORWARD_HEADER_MAC_BYTES) return undefined
  const mac = buf.subarray(2 + length, 2 + length + FORWARD_HEADER_MAC_BYTES)
  if (!timingSafeEqual(mac, headerMac(key, buf.subarray(0, 2 + length)))) {
    throw new TunnelError('TUN_ERR_CLUSTER_BUS_INTEGRITY', 'the forward header failed its integrity check (altered on the way, or not from the node that authenticated)')
  }
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
  return { header: { tunnelId, clientAddress }, rest: buf.subarray(2 + length + FORWARD_HEADER_MAC_BYTES) }
}

function malformed(what: string): TunnelError {
  return new TunnelError('TUN_ERR_CLUSTER_BUS_PROTOCOL', `the forwarding replica sent ${what}`)
}
