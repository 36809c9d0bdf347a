import type { Socket } from 'node:net'
import { TunnelError } from '../../errors/index.ts'

/** Resolves once `socket` is connected; rejects with TUN_ERR_CLUSTER_UNREACHABLE (and destroys it) otherwise. */
export function connected(socket: Socket, timeoutMs: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    const fail = (err: NodeJS.ErrnoException): void => {
      cleanup()
      socket.destroy()
      reject(new TunnelError('TUN_ERR_CLUSTER_UNREACHABLE', `cannot reach cluster node at ${address}: ${err.code ?? err.message}`, { cause: err }))
    }
    const ok = (): void => {
      cleanup()
      resolve()
    }
    const closed = (): void => fail(new Error('closed while connecting'))
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.off('connect', ok)
      socket.off('error', fail)
      socket.off('close', closed)
    }
    socket.once('connect', ok)
    socket.once('error', fail)
    socket.once('close', closed)
  })
}

/** Splits HOST:PORT or [v6]:PORT as stored in cluster_node. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address)
  const port = m === null ? NaN : Number(m[3])
  if (m === null || !(port > 0 && port <= 65535)) throw new TunnelError('TUN_ERR_CONFIG_INVALID', `cluster address "${address}" is not HOST:PORT`)
  return { host: m[1] ?? m[2]!, port }
}
