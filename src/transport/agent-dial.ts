import { request, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { TunnelError, errorCatalog, type ErrorCode } from '../errors/index.ts'
import {
  AGENT_CONNECT_PATH,
  AGENT_UPGRADE_TOKEN,
  agentHeaders,
  formatAgentAuthorization,
  parseWelcomeHeaders,
  type SecurityKey,
  type SessionWelcome,
} from '../protocol/index.ts'
import { spkiPin } from './certificate-pin.ts'
import { openProxyTunnel } from './proxy-connect.ts'
import { proxyFor, type ProxySettings } from './proxy-settings.ts'
import { tlsPolicy } from './tls-policy.ts'

export interface AgentDialOptions {
  nodeId: string
  instance: string
  agentVersion: string
  /** PEM CA bundle to trust instead of the system CAs (ignored when the key carries a pin) */
  ca?: string | undefined
  connectTimeoutMs: number
  signal?: AbortSignal | undefined
  /** HTTP CONNECT proxy and NO_PROXY list; undefined: always dial directly */
  proxy?: ProxySettings | undefined
}

export interface DialedSession {
  socket: TLSSocket
  welcome: SessionWelcome
}

/**
 * Dials the server named in the key and performs the connect handshake. The secret is sent only
 * after the server's certificate checked out: by its pin when the key carries one (self-signed
 * server), else by the system CAs or the configured CA file.
 */
export async function dialAgentSession(key: SecurityKey, options: AgentDialOptions): Promise<DialedSession> {
  const url = new URL(key.serverUrl)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const port = url.port === '' ? 443 : Number(url.port)
  const proxy = proxyFor(options.proxy, host, port)
  // Through a proxy the TLS handshake (and so the pin or CA check) runs end to end inside the
  // CONNECT tunnel: the proxy sees the target host:port and ciphertext, never the secret.
  const tunnel = proxy === undefined ? undefined : { socket: await openProxyTunnel(proxy, { host, port }, options), label: proxy.label }
  if (tunnel !== undefined && options.signal?.aborted === true) {
    tunnel.socket.destroy()
    throw new TunnelError('TUN_ERR_SERVER_UNREACHABLE', 'connect aborted')
  }
  const socket = await openTls(host, port, key, options, tunnel)
  try {
    return await upgrade(socket, key, options, url.host)
  } catch (err) {
    socket.destroy()
    throw err
  }
}

function openTls(host: string, port: number, key: SecurityKey, options: AgentDialOptions, tunnel?: { socket: Socket; label: string }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const pinned = key.certificatePin !== undefined
    const via = tunnel === undefined ? '' : ` through proxy ${tunnel.label}`
    const socket = tlsConnect({
      // With a socket, host is still given: it names the server for the certificate check, which
      // would otherwise fall back to the socket's own peer, the proxy.
      host,
      ...(tunnel === undefined ? { port } : { socket: tunnel.socket }),
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
      ...tlsPolicy,
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: !pinned,
      ...(options.ca !== undefined && !pinned ? { ca: options.ca } : {}),
    })
    const timer = setTimeout(() => fail(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `cannot reach ${host}:${port}${via}: connect timed out`)), options.connectTimeoutMs)
    const onAbort = (): void => fail(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', 'connect aborted'))
    options.signal?.addEventListener('abort', onAbort, { once: true })
    function fail(err: TunnelError): void {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      tunnel?.socket.destroy()
      reject(err)
    }
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const tlsProblem = err.code !== undefined && (err.code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME/.test(err.code))
      fail(
        tlsProblem
          ? new TunnelError('TUN_ERR_TLS_CERT_MISMATCH', `certificate mismatch: ${host}:${port} presented a certificate that is not trusted (${err.code})`)
          : new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `cannot reach ${host}:${port}${via}: ${err.code ?? err.message}`),
      )
    })
    socket.once('secureConnect', () => {
      if (pinned) {
        const peer = socket.getPeerX509Certificate()
        if (peer === undefined || spkiPin(peer) !== key.certificatePin) {
          fail(new TunnelError('TUN_ERR_TLS_CERT_MISMATCH', `certificate mismatch: ${host}:${port} presented a certificate that does not match the pin in the security key`))
          return
        }
      }
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      socket.removeAllListeners('error')
      socket.setNoDelay(true)
      resolve(socket)
    })
  })
}

function upgrade(socket: TLSSocket, key: SecurityKey, options: AgentDialOptions, hostHeader: string): Promise<DialedSession> {
  return new Promise((resolve, reject) => {
    const req = request({
      createConnection: () => socket,
      method: 'GET',
      path: AGENT_CONNECT_PATH,
      headers: {
        Host: hostHeader,
        Connection: 'Upgrade',
        Upgrade: AGENT_UPGRADE_TOKEN,
        Authorization: formatAgentAuthorization(key.tunnelId, key.secret),
        [agentHeaders.nodeId]: options.nodeId,
        [agentHeaders.instance]: options.instance,
        [agentHeaders.version]: options.agentVersion,
      },
    })
    const timer = setTimeout(() => {
      req.destroy()
      reject(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', 'the server did not answer the connect request in time'))
    }, options.connectTimeoutMs)
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `connect request failed: ${err.code ?? err.message}`))
    })
    req.on('upgrade', (res: IncomingMessage, upgraded, head: Buffer) => {
      clearTimeout(timer)
      try {
        const welcome = parseWelcomeHeaders(res.headers)
        if (head.length > 0) upgraded.unshift(head)
        resolve({ socket: upgraded as TLSSocket, welcome })
      } catch (err) {
        reject(err)
      }
    })
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size <= 16384) chunks.push(c)
      })
      res.on('end', () => {
        clearTimeout(timer)
        reject(refusal(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')))
      })
      res.on('error', () => {})
    })
    req.end()
  })
}

/** Classifies a refused connect by the server's JSON error (its code decides ERROR vs retry). */
function refusal(status: number, body: string): TunnelError {
  let code: string | undefined
  let message: string | undefined
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }
    if (typeof parsed.error?.code === 'string') code = parsed.error.code
    if (typeof parsed.error?.message === 'string') message = parsed.error.message
  } catch {
    // not ours (a proxy or load balancer answered): classify by status alone
  }
  if (code !== undefined && code in errorCatalog) return new TunnelError(code as ErrorCode, message)
  const byStatus: ErrorCode =
    status === 401 || status === 403 ? 'TUN_ERR_KEY_REJECTED' : status === 404 ? 'TUN_ERR_TUNNEL_NOT_FOUND' : status === 426 ? 'TUN_ERR_HANDSHAKE_VERSION' : 'TUN_ERR_SERVER_UNAVAILABLE'
  return new TunnelError(byStatus, `${errorCatalog[byStatus].message} (HTTP ${status})`)
}
