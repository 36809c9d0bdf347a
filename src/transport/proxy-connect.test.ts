import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, describe, test } from 'node:test'
import { isTunnelError } from '../errors/index.ts'
import { startConnectProxy } from '../testing/connect-proxy.ts'
import { eventually } from '../testing/eventually.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { MAX_PROXY_RESPONSE_HEAD_BYTES, openProxyTunnel } from './proxy-connect.ts'
import { parseProxyUrl } from './proxy-settings.ts'

checkNoLeakedHandles()

const TIMEOUT = { connectTimeoutMs: 5_000 }

/** A fake proxy whose answer the test writes by hand; it records the request head it got. */
async function scriptedProxy(answer: (socket: Socket, head: string) => void): Promise<{ port: number; heads: string[]; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const heads: string[] = []
  const server: Server = createServer((s) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => {})
    let buf = ''
    s.on('data', (c: Buffer) => {
      if (buf.includes('\r\n\r\n')) return
      buf += c.toString('latin1')
      const end = buf.indexOf('\r\n\r\n')
      if (end === -1) return
      heads.push(buf.slice(0, end))
      answer(s, buf.slice(0, end))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as AddressInfo).port,
    heads,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}

async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    const s = await p
    ;(s as Socket).destroy()
  } catch (err) {
    assert.ok(isTunnelError(err), String(err))
    return { code: err.code, message: err.message }
  }
  assert.fail('expected the CONNECT to fail')
}

function firstData(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(d.toString('utf8')))
    socket.once('error', reject)
    socket.resume()
  })
}

describe('openProxyTunnel against a real CONNECT proxy', () => {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  test('asks for exactly the target, with Host, and a tunnel that carries bytes both ways', async () => {
    const echo = await echoServer()
    cleanups.push(echo.close)
    const proxy = await startConnectProxy({ hosts: { 'server.test': '127.0.0.1' } })
    cleanups.push(proxy.close)
    const socket = await openProxyTunnel(parseProxyUrl(proxy.url()), { host: 'server.test', port: echo.port }, TIMEOUT)
    try {
      socket.write('ping through the tunnel')
      assert.equal(await firstData(socket), 'ping through the tunnel')
    } finally {
      socket.destroy()
    }
    assert.equal(proxy.connects.length, 1)
    assert.equal(proxy.connects[0]!.target, `server.test:${echo.port}`)
    assert.equal(proxy.connects[0]!.proxyAuthorization, undefined, 'no credentials in the URL: no Proxy-Authorization')
    assert.match(proxy.connects[0]!.received.toString('latin1'), new RegExp(`^CONNECT server\\.test:${echo.port} HTTP/1\\.1\\r\\nHost: server\\.test:${echo.port}\\r\\n\\r\\n`))
  })

  test('credentials go as Proxy-Authorization: Basic, percent-decoded; an IPv6 target is bracketed', async () => {
    const proxy = await scriptedProxy((s) => s.end('HTTP/1.1 403 Forbidden\r\n\r\n'))
    cleanups.push(proxy.close)
    const endpoint = parseProxyUrl(`http://dom%5Calice:p%40ss@127.0.0.1:${proxy.port}`)
    await rejection(openProxyTunnel(endpoint, { host: '2001:db8::7', port: 443 }, TIMEOUT))
    assert.equal(proxy.heads[0], `CONNECT [2001:db8::7]:443 HTTP/1.1\r\nHost: [2001:db8::7]:443\r\nProxy-Authorization: Basic ${Buffer.from('dom\\alice:p@ss').toString('base64')}`)
  })

  test('bytes that follow the 2xx answer are kept for the next reader; a head split into 1-byte writes is read whole', async () => {
    const proxy = await scriptedProxy((s) => {
      const answer = 'HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\nearly bytes'
      let i = 0
      const drip = (): void => {
        if (i < answer.length - 'early bytes'.length) {
          s.write(answer[i++]!)
          setImmediate(drip)
        } else s.write(answer.slice(i))
      }
      drip()
    })
    cleanups.push(proxy.close)
    const socket = await openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${proxy.port}`), { host: 'server.test', port: 443 }, TIMEOUT)
    try {
      assert.equal(await firstData(socket), 'early bytes')
    } finally {
      socket.destroy()
    }
  })

  test('407: without credentials it says to give them, with wrong ones that they were rejected; nothing more is sent', async () => {
    const proxy = await startConnectProxy({ requireAuth: { username: 'alice', password: 'right' } })
    cleanups.push(proxy.close)
    const missing = await rejection(openProxyTunnel(parseProxyUrl(proxy.url()), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.equal(missing.code, 'TUN_ERR_PROXY_AUTH_REQUIRED')
    assert.equal(missing.message, `proxy ${proxy.address} requires authentication (407 Proxy Authentication Required): give the user and password in the proxy URL, http://USER:PASSWORD@${proxy.address}`)
    const wrong = await rejection(openProxyTunnel(parseProxyUrl(proxy.url({ username: 'alice', password: 'wrong' })), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.equal(wrong.code, 'TUN_ERR_PROXY_AUTH_REQUIRED')
    assert.equal(wrong.message, `proxy ${proxy.address} rejected the user and password in the proxy URL (407 Proxy Authentication Required)`)
    assert.doesNotMatch(wrong.message, /alice|wrong/)
    for (const c of proxy.connects) {
      await eventually(() => c.closed, 'the agent closes the refused connection')
      assert.equal(c.bytesAfterRefusal, 0)
    }
  })

  test('407 asking only for NTLM says that only Basic is supported', async () => {
    const proxy = await scriptedProxy((s) => s.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Negotiate\r\n\r\n'))
    cleanups.push(proxy.close)
    const r = await rejection(openProxyTunnel(parseProxyUrl(`http://u:p@127.0.0.1:${proxy.port}`), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.equal(r.code, 'TUN_ERR_PROXY_AUTH_REQUIRED')
    assert.match(r.message, /it asks for ntlm, negotiate, and only Basic is supported$/)
  })

  test('other statuses: 4xx is TUN_ERR_PROXY_REFUSED naming status and target, 5xx is the server unreachable through the proxy', async () => {
    const refusing = await startConnectProxy({ refuseWith: { status: 403, reason: 'Forbidden' } })
    cleanups.push(refusing.close)
    const r = await rejection(openProxyTunnel(parseProxyUrl(refusing.url()), { host: 'server.test', port: 8443 }, TIMEOUT))
    assert.deepEqual(r, { code: 'TUN_ERR_PROXY_REFUSED', message: `proxy ${refusing.address} refused the CONNECT to server.test:8443 (403 Forbidden)` })
    const gateway = await startConnectProxy({ refuseWith: { status: 502, reason: 'Bad Gateway' } })
    cleanups.push(gateway.close)
    const g = await rejection(openProxyTunnel(parseProxyUrl(gateway.url()), { host: 'server.test', port: 8443 }, TIMEOUT))
    assert.deepEqual(g, { code: 'TUN_ERR_SERVER_UNREACHABLE', message: `proxy ${gateway.address} could not connect to server.test:8443 (502 Bad Gateway)` })
  })

  test('an answer that is not HTTP, or a head past the size bound, is refused; control characters never reach the message', async () => {
    const notHttp = await scriptedProxy((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'))
    cleanups.push(notHttp.close)
    const a = await rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${notHttp.port}`), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.deepEqual(a, { code: 'TUN_ERR_PROXY_REFUSED', message: `proxy 127.0.0.1:${notHttp.port} answered the CONNECT with something that is not an HTTP response` })

    const huge = await scriptedProxy((s) => s.write(`HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(MAX_PROXY_RESPONSE_HEAD_BYTES + 10)}`))
    cleanups.push(huge.close)
    const b = await rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${huge.port}`), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.deepEqual(b, { code: 'TUN_ERR_PROXY_REFUSED', message: `proxy 127.0.0.1:${huge.port} answered the CONNECT with a head longer than ${MAX_PROXY_RESPONSE_HEAD_BYTES} bytes` })

    const odd = await scriptedProxy((s) => s.end('HTTP/1.1 451 Nope\x1b[31m red\x07\r\n\r\n'))
    cleanups.push(odd.close)
    const c = await rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${odd.port}`), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.equal(c.message, `proxy 127.0.0.1:${odd.port} refused the CONNECT to server.test:443 (451 Nope[31m red)`)
  })

  test('a proxy that closes, never answers, or is not there: TUN_ERR_SERVER_UNREACHABLE naming the proxy', async () => {
    const closing = await scriptedProxy((s) => s.end())
    cleanups.push(closing.close)
    const a = await rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${closing.port}`), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.deepEqual(a, { code: 'TUN_ERR_SERVER_UNREACHABLE', message: `proxy 127.0.0.1:${closing.port} closed the connection before answering the CONNECT to server.test:443` })

    const silent = await scriptedProxy(() => {})
    cleanups.push(silent.close)
    const b = await rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${silent.port}`), { host: 'server.test', port: 443 }, { connectTimeoutMs: 300 }))
    assert.deepEqual(b, { code: 'TUN_ERR_SERVER_UNREACHABLE', message: `proxy 127.0.0.1:${silent.port} did not answer the CONNECT to server.test:443 within 300 ms` })

    const gone = await scriptedProxy(() => {})
    await gone.close()
    const c = await rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${gone.port}`), { host: 'server.test', port: 443 }, TIMEOUT))
    assert.deepEqual(c, { code: 'TUN_ERR_SERVER_UNREACHABLE', message: `cannot reach proxy 127.0.0.1:${gone.port}: ECONNREFUSED` })
  })

  test('an abort ends a CONNECT in progress', async () => {
    const silent = await scriptedProxy(() => {})
    cleanups.push(silent.close)
    const abort = new AbortController()
    const pending = rejection(openProxyTunnel(parseProxyUrl(`http://127.0.0.1:${silent.port}`), { host: 'server.test', port: 443 }, { connectTimeoutMs: 30_000, signal: abort.signal }))
    await eventually(() => silent.heads.length === 1, 'the CONNECT arrived')
    abort.abort()
    assert.deepEqual(await pending, { code: 'TUN_ERR_SERVER_UNREACHABLE', message: 'connect aborted' })
  })
})
