import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'
import { TunnelError, isTunnelError, type ErrorCode } from '../errors/index.ts'
import { AuthStats } from './auth-stats.ts'
import { initiateHandshake } from './auth/client-handshake.ts'
import type { HandshakeKeys } from './auth/handshake-keys.ts'
import { NonceRegistry } from './auth/nonce-registry.ts'
import { connected, splitAddress } from './bus/tcp-dial.ts'

export interface ProbeResult {
  ok: boolean
  address: string
  /** the node id that answered, once its CHALLENGE arrived */
  peerId: string | null
  /** hex id of the key both sides proved */
  kid: string | null
  /** from TCP connect to the verified server proof, in ms (3 decimals); null unless authenticated */
  timeToAuthMs: number | null
  error: { code: ErrorCode; message: string } | null
}

/**
 * Runs the client side of the cluster handshake against one node and reports how it went — the
 * operator's "can nodes authenticate to this one?" — then closes without joining the bus. `ok` is
 * true only for a real authentication: a handshake that skipped it (auth disabled) is reported as
 * TUN_ERR_CLUSTER_AUTH_DISABLED.
 */
export async function probeClusterNode(address: string, options: { keys: HandshakeKeys; timeoutMs: number; nodeId?: string }): Promise<ProbeResult> {
  const result: ProbeResult = { ok: false, address, peerId: null, kid: null, timeToAuthMs: null, error: null }
  const { host, port } = splitAddress(address)
  const socket = connect({ host, port, noDelay: true })
  const started = performance.now()
  try {
    await connected(socket, options.timeoutMs, address)
    const peer = await initiateHandshake(socket, {
      nodeId: options.nodeId ?? `probe-${randomBytes(4).toString('hex')}`,
      keys: options.keys,
      nonces: new NonceRegistry(),
      timeoutMs: Math.max(1, options.timeoutMs - (performance.now() - started)),
      stats: new AuthStats(),
    })
    result.peerId = peer.peerId
    if (peer.kid === null) throw new TunnelError('TUN_ERR_CLUSTER_AUTH_DISABLED', `node ${peer.peerId} accepted the connection without authentication: cluster authentication is disabled (flag or empty key)`)
    result.ok = true
    result.kid = peer.kid
    result.timeToAuthMs = Math.round((performance.now() - started) * 1000) / 1000
  } catch (err) {
    const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', String(err))
    result.error = { code: e.code, message: e.message }
  } finally {
    socket.destroy()
  }
  return result
}
