import { connect, type Socket } from 'node:net'
import { TunnelError } from '../errors/index.ts'
import type { ProxyEndpoint } from './proxy-settings.ts'

/** A proxy's answer to CONNECT is a status line and a few fields; anything longer is not a proxy. */
export const MAX_PROXY_RESPONSE_HEAD_BYTES = 16 * 1024

export interface ProxyTunnelOptions {
  /** how long reaching the proxy and reading its answer may take, in ms */
  connectTimeoutMs: number
  signal?: AbortSignal | undefined
}

/**
 * Opens a TCP connection to an HTTP proxy and asks it with `CONNECT host:port` for a tunnel to the
 * target. Resolves with the socket once the proxy answered 2xx; bytes that followed the answer are
 * put back into the socket, so whatever reads it next sees them first. The proxy sees the target
 * and, when the URL had a user, the Proxy-Authorization field: nothing else is written here, and
 * after a refusal nothing more is written at all.
 *
 * Failures: the proxy cannot be reached, times out, closes, or answers 5xx (it could not reach the
 * target) → TUN_ERR_SERVER_UNREACHABLE naming the proxy; 407 → TUN_ERR_PROXY_AUTH_REQUIRED; any
 * other status or a malformed answer → TUN_ERR_PROXY_REFUSED.
 */
export function openProxyTunnel(proxy: ProxyEndpoint, target: { host: string; port: number }, options: ProxyTunnelOptions): Promise<Socket> {
  const authority = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
  return new Promise((resolve, reject) => {
    let connected = false
    let received = Buffer.alloc(0)
    const socket = connect({ host: proxy.host, port: proxy.port })
    const timer = setTimeout(
      () =>
        fail(
          connected
            ? new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `proxy ${proxy.label} did not answer the CONNECT to ${authority} within ${options.connectTimeoutMs} ms`)
            : new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `cannot reach proxy ${proxy.label}: connect timed out`),
        ),
      options.connectTimeoutMs,
    )
    const onAbort = (): void => fail(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', 'connect aborted'))
    if (options.signal?.aborted === true) queueMicrotask(onAbort)
    options.signal?.addEventListener('abort', onAbort, { once: true })

    function settle(): void {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      socket.removeListener('data', onData)
      socket.removeListener('error', onError)
      socket.removeListener('close', onClose)
    }
    function fail(err: TunnelError): void {
      settle()
      socket.destroy()
      reject(err)
    }
    function onError(err: NodeJS.ErrnoException): void {
      fail(
        new TunnelError(
          'TUN_ERR_SERVER_UNREACHABLE',
          connected ? `proxy ${proxy.label} failed before answering the CONNECT to ${authority}: ${err.code ?? err.message}` : `cannot reach proxy ${proxy.label}: ${err.code ?? err.message}`,
        ),
      )
    }
    function onClose(): void {
      fail(new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `proxy ${proxy.label} closed the connection before answering the CONNECT to ${authority}`))
    }
    function onData(chunk: Buffer): void {
      received = Buffer.concat([received, chunk])
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) {
        if (received.length > MAX_PROXY_RESPONSE_HEAD_BYTES) {
          fail(new TunnelError('TUN_ERR_PROXY_REFUSED', `proxy ${proxy.label} answered the CONNECT with a head longer than ${MAX_PROXY_RESPONSE_HEAD_BYTES} bytes`))
        }
        return
      }
      const head = received.subarray(0, end).toString('latin1')
      const rest = received.subarray(end + 4)
      const answer = answerOf(head)
      if (answer === undefined) {
        fail(new TunnelError('TUN_ERR_PROXY_REFUSED', `proxy ${proxy.label} answered the CONNECT with something that is not an HTTP response`))
        return
      }
      if (answer.status >= 200 && answer.status <= 299) {
        // Paused before the listener goes, so no byte flows past us before the next reader is attached.
        socket.pause()
        settle()
        if (rest.length > 0) socket.unshift(rest)
        resolve(socket)
        return
      }
      fail(refusal(proxy, authority, answer))
    }

    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.once('connect', () => {
      connected = true
      socket.setNoDelay(true)
      const fields = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`, ...(proxy.authorization === undefined ? [] : [`Proxy-Authorization: ${proxy.authorization}`])]
      socket.write(`${fields.join('\r\n')}\r\n\r\n`)
    })
  })
}

interface ProxyAnswer {
  status: number
  /** the reason phrase, cleaned: it ends up in status lines people read */
  reason: string
  /** the auth schemes of Proxy-Authenticate, lower-case */
  schemes: string[]
}

function answerOf(head: string): ProxyAnswer | undefined {
  const [statusLine, ...fieldLines] = head.split(/\r?\n/)
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine ?? '')
  if (m === null) return undefined
  const reason = (m[2] ?? '').replace(/[^\x20-\x7e]/g, '').trim().slice(0, 100)
  const schemes = fieldLines
    .map((l) => /^proxy-authenticate:\s*([A-Za-z0-9_-]+)/i.exec(l)?.[1]?.toLowerCase())
    .filter((s): s is string => s !== undefined)
  return { status: Number(m[1]), reason, schemes }
}

function refusal(proxy: ProxyEndpoint, authority: string, answer: ProxyAnswer): TunnelError {
  const status = `${answer.status}${answer.reason === '' ? '' : ` ${answer.reason}`}`
  if (answer.status === 407) {
    const offers = answer.schemes.length > 0 && !answer.schemes.includes('basic') ? `; it asks for ${answer.schemes.join(', ')}, and only Basic is supported` : ''
    return new TunnelError(
      'TUN_ERR_PROXY_AUTH_REQUIRED',
      proxy.authorization === undefined
        ? `proxy ${proxy.label} requires authentication (${status}): give the user and password in the proxy URL, http://USER:PASSWORD@${proxy.label}${offers}`
        : `proxy ${proxy.label} rejected the user and password in the proxy URL (${status})${offers}`,
    )
  }
  if (answer.status >= 500) return new TunnelError('TUN_ERR_SERVER_UNREACHABLE', `proxy ${proxy.label} could not connect to ${authority} (${status})`)
  return new TunnelError('TUN_ERR_PROXY_REFUSED', `proxy ${proxy.label} refused the CONNECT to ${authority} (${status})`)
}
