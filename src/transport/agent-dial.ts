import type { Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { TunnelError, errorCatalog, isTunnelError, type ErrorCode } from '../errors/index.ts'
import {
  AGENT_CONNECT_PATH,
  AGENT_UPGRADE_TOKEN,
  agentHeaders,
  formatAgentAuthorization,
  parseWelcomeHeaders,
  type SecurityKey,
  type SessionWelcome,
} from '../protocol/index.ts'
import { ResponseFramer, serializeRequestHead } from '../protocol/http1/index.ts'
import { spkiPin } from './certificate-pin.ts'
import { openProxyTunnel } from './proxy-connect.ts'
import { proxyFor, type ProxySettings } from './proxy-settings.ts'
import type { SessionInput } from './session-mux/index.ts'
import { SESSION_READ_BUFFER, SessionReader } from './session-reader.ts'
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
  /** the connection's reads from the end of the 101 response on, for the session (SessionMux's `input`) */
  input: SessionInput
}

/** A refusal's body is read up to this many bytes (the server's JSON error is far smaller). */
const REFUSAL_BODY_MAX_BYTES = 16 * 1024

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
  const reader = new SessionReader()
  const socket = await openTls(host, port, key, options, reader, tunnel)
  try {
    return await upgrade(socket, reader, key, options, url.host)
  } catch (err) {
    socket.destroy()
    throw err
  }
}

function openTls(host: string, port: number, key: SecurityKey, options: AgentDialOptions, reader: SessionReader, tunnel?: { socket: Socket; label: string }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const pinned = key.certificatePin !== undefined
    const via = tunnel === undefined ? '' : ` through proxy ${tunnel.label}`
    const socket = tlsConnect({
      // With a socket, host is still given: it names the server for the certificate check, which
      // would otherwise fall back to the socket's own peer, the proxy.
      host,
      // Node reads into a buffer of ours only on a connection it opens itself; over a proxy's
      // tunnel the reads come as 'data' events below.
      ...(tunnel === undefined
        ? {
            port,
            onread: {
              buffer: SESSION_READ_BUFFER,
              callback: (n: number) => {
                reader.deliver(SESSION_READ_BUFFER.subarray(0, n))
                return true
              },
            },
          }
        : { socket: tunnel.socket }),
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
      ...tlsPolicy,
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: !pinned,
      ...(options.ca !== undefined && !pinned ? { ca: options.ca } : {}),
    })
    if (tunnel !== undefined) socket.on('data', (chunk: Buffer) => reader.deliver(chunk))
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

/**
 * The connect request (an HTTP/1.1 upgrade) and its answer, read with the project's own response
 * framer from the session reader: the bytes behind the 101 response are the session's first.
 */
function upgrade(socket: TLSSocket, reader: SessionReader, key: SecurityKey, options: AgentDialOptions, hostHeader: string): Promise<DialedSession> {
  return new Promise((resolve, reject) => {
    let settled = false
    let status = 0
    let chunked = false
    let headers: Record<string, string> = {}
    const body: Buffer[] = []
    let bodyBytes = 0
    const finish = (err: TunnelError | undefined, session?: DialedSession): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.off('error', onError)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      if (err !== undefined) {
        reader.detach()
        reject(err)
      } else resolve(session!)
    }
    const failed = (reason: string): void => finish(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `connect request failed: ${reason}`))
    const framer = new ResponseFramer({
      onHead: (head) => {
        if (head.statusCode < 200 && head.statusCode !== 101) return // an interim answer
        status = head.statusCode
        chunked = head.body.kind === 'chunked'
        headers = {}
        // Named as Node's HTTP client names them: lower case, repeated fields joined.
        for (const [name, value] of head.headers) {
          const k = name.toLowerCase()
          headers[k] = headers[k] === undefined ? value : `${headers[k]}, ${value}`
        }
      },
      onBody: (chunk) => {
        if (bodyBytes < REFUSAL_BODY_MAX_BYTES) body.push(chunk.subarray(0, REFUSAL_BODY_MAX_BYTES - bodyBytes))
        bodyBytes += chunk.length
      },
      onMessageEnd: () => {
        const raw = Buffer.concat(body)
        finish(refusal(status, (chunked ? dechunk(raw) : raw).toString('utf8')))
      },
      onUpgrade: (rest) => {
        let welcome: SessionWelcome
        try {
          welcome = parseWelcomeHeaders(headers)
        } catch (err) {
          finish(isTunnelError(err) ? err : new TunnelError('TUN_ERR_HANDSHAKE_VERSION', String(err)))
          return
        }
        reader.detach(rest)
        finish(undefined, { socket, welcome, input: reader })
      },
    })
    framer.expect('GET')
    const onError = (err: NodeJS.ErrnoException): void => failed(err.code ?? err.message)
    const onEnd = (): void => {
      if (settled) return
      try {
        framer.end()
      } catch (err) {
        failed(isTunnelError(err) ? err.message : String(err))
        return
      }
      failed('the server closed the connection without answering')
    }
    const timer = setTimeout(() => {
      socket.destroy()
      finish(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', 'the server did not answer the connect request in time'))
    }, options.connectTimeoutMs)
    socket.on('error', onError)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    reader.attach((chunk) => {
      if (settled) return
      try {
        // The framer keeps references into what it is given: a copy, as the read buffer is reused.
        framer.push(Buffer.from(chunk))
      } catch (err) {
        failed(isTunnelError(err) ? err.message : String(err))
      }
    })
    let head: Buffer
    try {
      head = serializeRequestHead({
        method: 'GET',
        target: AGENT_CONNECT_PATH,
        versionMinor: 1,
        headers: [
          ['Host', hostHeader],
          ['Connection', 'Upgrade'],
          ['Upgrade', AGENT_UPGRADE_TOKEN],
          ['Authorization', formatAgentAuthorization(key.tunnelId, key.secret)],
          [agentHeaders.nodeId, options.nodeId],
          [agentHeaders.instance, options.instance],
          [agentHeaders.version, options.agentVersion],
        ],
      })
    } catch (err) {
      finish(isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', String(err)))
      return
    }
    socket.write(head)
  })
}

/**
 * The data of a chunked body the framer passed on verbatim (and checked), as far as `raw` goes: a
 * refusal's body is read only up to REFUSAL_BODY_MAX_BYTES.
 */
function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = raw.indexOf('\r\n', at)
    if (eol < 0) break
    const size = Number.parseInt(raw.toString('latin1', at, eol).split(';')[0]!.trim(), 16)
    if (!(size > 0)) break
    parts.push(raw.subarray(eol + 2, Math.min(eol + 2 + size, raw.length)))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(parts)
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
