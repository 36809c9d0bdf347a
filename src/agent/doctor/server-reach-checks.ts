import { lookup } from 'node:dns/promises'
import { connect, isIP, type Socket } from 'node:net'
import { isTunnelError } from '../../errors/index.ts'
import { openProxyTunnel } from '../../transport/proxy-connect.ts'
import type { ProxyEndpoint } from '../../transport/proxy-settings.ts'
import { fail, ok, skipped, type Finding } from './doctor-check.ts'

/** Where the key says the server is, and how this node gets there. */
export interface ServerRoute {
  host: string
  port: number
  /** host:port as written in messages */
  authority: string
  /** the proxy this connection goes through (NO_PROXY applied); undefined: direct */
  proxy: ProxyEndpoint | undefined
}

const PROXY_HINT = 'where outgoing connections must go through an HTTP proxy, give it with --proxy (or https_proxy)'

/** Check 2: does the server's name resolve on this node (unless a proxy does that for it). */
export async function checkServerName(route: ServerRoute, timeoutMs: number): Promise<Finding> {
  if (route.proxy !== undefined) return skipped(`the server is reached through proxy ${route.proxy.label}, which resolves ${route.host} itself`)
  if (isIP(route.host) !== 0) return skipped(`the key names the server by address (${route.host}): there is no name to resolve`)
  const fix = `check the server name in the key (${route.host}) and this node's DNS settings; ${PROXY_HINT}`
  // RFC 6761 §6.4: .invalid never resolves, and resolvers should say so without asking anyone.
  if (/(^|\.)invalid\.?$/i.test(route.host)) return fail(`${route.host} does not resolve: names under .invalid never do`, fix, 'TUN_ERR_SERVER_UNREACHABLE')
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })), timeoutMs)
  })
  try {
    const addresses = await Promise.race([lookup(route.host, { all: true }), deadline])
    return ok(`${route.host} resolves to ${addresses.map((a) => a.address).join(', ')}`)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    const why = code === 'ENOTFOUND' ? 'no such name' : code === 'ETIMEOUT' ? `no answer within ${timeoutMs} ms` : code
    return fail(`${route.host} does not resolve (${why})`, fix, 'TUN_ERR_SERVER_UNREACHABLE')
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Opens the byte path to the server: TCP, or a CONNECT tunnel through the proxy. The caller owns
 * the socket. Failures are the same TunnelErrors the agent would meet.
 */
export function openServerPath(route: ServerRoute, timeoutMs: number): Promise<Socket> {
  if (route.proxy !== undefined) return openProxyTunnel(route.proxy, { host: route.host, port: route.port }, { connectTimeoutMs: timeoutMs })
  return new Promise((resolve, reject) => {
    const socket = connect({ host: route.host, port: route.port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    })
  })
}

/** Check 3: does the server (or the proxy on its behalf) accept a connection on the key's port. */
export async function checkServerPort(route: ServerRoute, timeoutMs: number): Promise<Finding> {
  let socket: Socket
  try {
    socket = await openServerPath(route, timeoutMs)
  } catch (err) {
    return portFailure(route, err, timeoutMs)
  }
  const peer = socket.remoteAddress
  socket.destroy()
  return route.proxy === undefined
    ? ok(`${route.authority} accepts connections${peer === undefined ? '' : ` (at ${peer})`}`)
    : ok(`proxy ${route.proxy.label} opened a tunnel to ${route.authority}`)
}

function portFailure(route: ServerRoute, err: unknown, timeoutMs: number): Finding {
  if (isTunnelError(err)) {
    // Proxy failures: openProxyTunnel's messages already name the proxy and what it said.
    const fix =
      err.code === 'TUN_ERR_PROXY_AUTH_REQUIRED'
        ? 'give the proxy user and password in the URL: --proxy http://USER:PASSWORD@HOST:PORT'
        : err.code === 'TUN_ERR_PROXY_REFUSED'
          ? `ask the proxy's administrators to allow CONNECT to ${route.authority}`
          : `check the --proxy address, and that the proxy can reach ${route.authority}`
    return fail(err.message, fix, err.code)
  }
  const code = (err as NodeJS.ErrnoException).code ?? String(err)
  const port = `port ${route.port}`
  if (code === 'ECONNREFUSED') {
    return fail(`${route.authority} refused the connection`, `check that the tunnel server runs and listens on ${port}, and that no firewall rejects the connection`, 'TUN_ERR_SERVER_UNREACHABLE')
  }
  if (code === 'ETIMEDOUT') {
    return fail(`${route.authority} did not answer within ${timeoutMs} ms`, `allow outgoing connections from this node to ${route.authority}; ${PROXY_HINT}`, 'TUN_ERR_SERVER_UNREACHABLE')
  }
  return fail(`cannot connect to ${route.authority}: ${code}`, `allow outgoing connections from this node to ${route.authority}; ${PROXY_HINT}`, 'TUN_ERR_SERVER_UNREACHABLE')
}
