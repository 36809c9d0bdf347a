import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

/** Client bytes kept per connection, so a test can scan what the proxy could read. */
const MAX_CAPTURE_BYTES = 1024 * 1024
const MAX_HEAD_BYTES = 16 * 1024

export interface ProxiedConnection {
  /** the CONNECT target exactly as requested, `host:port` */
  target: string
  /** the Proxy-Authorization field, when the client sent one */
  proxyAuthorization: string | undefined
  /** the status the proxy answered */
  status: number
  /** every byte the client sent, head included (capped at 1 MiB) */
  received: Buffer
  /** on a refused connection, bytes the client sent beyond its CONNECT head (it has no reason to send any) */
  bytesAfterRefusal: number
  /** the client's side of this connection has closed */
  closed: boolean
}

export interface TestConnectProxy {
  port: number
  /** `127.0.0.1:port` */
  address: string
  /** the proxy URL, with credentials when given (percent-encoded here) */
  url(credentials?: { username: string; password: string }): string
  /** every CONNECT request seen, in order of arrival */
  connects: ProxiedConnection[]
  close(): Promise<void>
}

export interface ConnectProxyOptions {
  /** answer 407 unless Proxy-Authorization is Basic with exactly these */
  requireAuth?: { username: string; password: string }
  /** answer every CONNECT with this status (and reason) instead of opening the tunnel */
  refuseWith?: { status: number; reason: string }
  /** where a CONNECT target host really is (a corporate proxy resolves names the agent cannot) */
  hosts?: Record<string, string>
}

/**
 * A real, minimal HTTP CONNECT proxy on 127.0.0.1:0 for tests: reads the request head, records
 * it, answers 200 and splices both ways, or refuses (407 without the right basic credentials,
 * `refuseWith` otherwise) and then only counts what the client still sends.
 */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<TestConnectProxy> {
  const sockets = new Set<Socket>()
  const connects: ProxiedConnection[] = []
  const expectedAuth =
    options.requireAuth === undefined ? undefined : `Basic ${Buffer.from(`${options.requireAuth.username}:${options.requireAuth.password}`, 'utf8').toString('base64')}`
  const track = (s: Socket): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => {})
  }

  const server = createServer((client) => {
    track(client)
    let head = Buffer.alloc(0)
    let record: ProxiedConnection | undefined
    client.on('data', (chunk: Buffer) => {
      if (record !== undefined) {
        if (record.received.length < MAX_CAPTURE_BYTES) record.received = Buffer.concat([record.received, chunk]).subarray(0, MAX_CAPTURE_BYTES)
        if (record.status !== 200) record.bytesAfterRefusal += chunk.length
        return
      }
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) {
        if (head.length > MAX_HEAD_BYTES) client.destroy()
        return
      }
      const lines = head.subarray(0, end).toString('latin1').split('\r\n')
      const target = /^CONNECT (\S+) HTTP\/1\.1$/.exec(lines[0] ?? '')?.[1]
      const auth = lines.find((l) => /^proxy-authorization:/i.test(l))?.replace(/^[^:]*:\s*/, '')
      const r: ProxiedConnection = { target: target ?? '', proxyAuthorization: auth, status: 0, received: head, bytesAfterRefusal: 0, closed: false }
      record = r
      connects.push(r)
      client.once('close', () => (r.closed = true))
      const extra = head.subarray(end + 4)
      const answer = (status: number, reason: string, fields: string[] = []): void => {
        r.status = status
        client.write([`HTTP/1.1 ${status} ${reason}`, ...fields, 'Content-Length: 0', '', ''].join('\r\n'))
        r.bytesAfterRefusal += extra.length
      }
      if (target === undefined) return answer(400, 'Bad Request')
      if (expectedAuth !== undefined && auth !== expectedAuth) return answer(407, 'Proxy Authentication Required', ['Proxy-Authenticate: Basic realm="test proxy"'])
      if (options.refuseWith !== undefined) return answer(options.refuseWith.status, options.refuseWith.reason)
      const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target)
      if (m === null) return answer(400, 'Bad Request')
      const name = m[1] ?? m[2]!
      client.pause()
      const upstream = connect({ host: options.hosts?.[name] ?? name, port: Number(m[3]) })
      track(upstream)
      upstream.once('error', () => {
        if (r.status === 0) answer(502, 'Bad Gateway')
        client.end()
      })
      upstream.once('connect', () => {
        r.status = 200
        client.write('HTTP/1.1 200 Connection established\r\n\r\n')
        if (extra.length > 0) upstream.write(extra)
        client.pipe(upstream)
        upstream.pipe(client)
        // pipe() only listens for data; the capture listener above stays attached and sees it too.
        client.resume()
      })
      client.once('close', () => upstream.destroy())
      upstream.once('close', () => client.destroy())
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    address: `127.0.0.1:${port}`,
    url: (c) => `http://${c === undefined ? '' : `${encodeURIComponent(c.username)}:${encodeURIComponent(c.password)}@`}127.0.0.1:${port}`,
    connects,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}
