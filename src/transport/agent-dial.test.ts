import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import { isTunnelError } from '../errors/index.ts'
import { AGENT_CONNECT_PATH, formatWelcomeHeaders, type SecurityKey } from '../protocol/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { dialAgentSession, type AgentDialOptions } from './agent-dial.ts'
import { spkiPin } from './certificate-pin.ts'
import { generateSelfSigned } from './self-signed-certificate.ts'

/**
 * A TLS server that reads one connect request and answers it as `answer` says: the dial's
 * handling of what servers, proxies and load balancers send back, over a real TLS connection.
 */
let answer: (socket: TLSSocket, request: string) => void = () => {}
let server: Server
let key: SecurityKey
const sockets = new Set<TLSSocket>()

before(async () => {
  const { cert, key: privateKey } = await generateSelfSigned(['127.0.0.1'])
  server = createServer({ cert, key: privateKey }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let request = ''
    let answered = false
    socket.on('data', (chunk: Buffer) => {
      request += chunk.toString('latin1')
      if (!answered && request.includes('\r\n\r\n')) {
        answered = true
        answer(socket, request)
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  key = { serverUrl: `https://127.0.0.1:${port}`, tunnelId: 'tdialtest1', secret: randomBytes(32), certificatePin: spkiPin(cert) }
})

after(async () => {
  for (const s of sockets) s.destroy()
  server.close()
  await once(server, 'close')
})
// After the server's own cleanup above: hooks run in the order they were registered.
checkNoLeakedHandles()

const options: AgentDialOptions = { nodeId: 'node-1', instance: 'test', agentVersion: '0.0.0', connectTimeoutMs: 5000 }

const welcome = formatWelcomeHeaders({ sessionId: 's1', tunnelName: 'shop', orgName: 'acme', pingIntervalMs: 1000, pingTimeoutMs: 3000 })

async function refusalOf(): Promise<{ code: string; message: string }> {
  try {
    const d = await dialAgentSession(key, options)
    d.socket.destroy()
  } catch (err) {
    assert.ok(isTunnelError(err), String(err))
    return { code: err.code, message: err.message }
  }
  assert.fail('the dial succeeded')
}

test('a 101 answer gives the session, and bytes the server sent behind it are the session input first', async () => {
  let seen = ''
  answer = (socket, request) => {
    seen = request
    const head = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: apptunnel', ...Object.entries(welcome).map(([k, v]) => `${k}: ${v}`)]
    socket.write(`${head.join('\r\n')}\r\n\r\nFIRST`)
    setTimeout(() => socket.write('SECOND'), 20)
  }
  const dialed = await dialAgentSession(key, options)
  try {
    assert.match(seen, new RegExp(`^GET ${AGENT_CONNECT_PATH} HTTP/1.1\r\n`))
    assert.match(seen, /\r\nAuthorization: /)
    assert.match(seen, /\r\nx-apptunnel-node-id: node-1\r\n/)
    assert.equal(dialed.welcome.tunnelName, 'shop')
    assert.equal(dialed.welcome.pingTimeoutMs, 3000)
    const got: string[] = []
    dialed.input.attach((c) => got.push(c.toString()))
    for (let i = 0; i < 100 && got.join('') !== 'FIRSTSECOND'; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(got.join(''), 'FIRSTSECOND')
  } finally {
    dialed.socket.destroy()
  }
})

test('our JSON refusal is classified by its code, whatever the framing of its body', async () => {
  const body = JSON.stringify({ error: { code: 'TUN_ERR_KEY_REJECTED', message: 'the security key was revoked' } })
  answer = (socket) => socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  assert.deepEqual(await refusalOf(), { code: 'TUN_ERR_KEY_REJECTED', message: 'the security key was revoked' })
  // Chunked, in pieces, as a proxy might pass it on.
  answer = (socket) => {
    socket.write('HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n')
    socket.write(`${(10).toString(16)}\r\n${body.slice(0, 10)}\r\n`)
    setTimeout(() => socket.end(`${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`), 10)
  }
  assert.deepEqual(await refusalOf(), { code: 'TUN_ERR_KEY_REJECTED', message: 'the security key was revoked' })
})

test('an answer that is not ours is classified by its status; one read until the close as well', async () => {
  answer = (socket) => socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\n<h1>down for maintenance</h1>')
  const r = await refusalOf()
  assert.equal(r.code, 'TUN_ERR_SERVER_UNAVAILABLE')
  assert.match(r.message, /\(HTTP 503\)/)
  answer = (socket) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
  assert.equal((await refusalOf()).code, 'TUN_ERR_TUNNEL_NOT_FOUND')
})

test('no answer, half an answer or a malformed one: the dial fails naming what happened', async () => {
  answer = (socket) => socket.end()
  assert.deepEqual(await refusalOf(), { code: 'TUN_ERR_SERVER_UNREACHABLE', message: 'connect request failed: the server closed the connection without answering' })
  answer = (socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: apptunnel\r\n')
  const half = await refusalOf()
  assert.equal(half.code, 'TUN_ERR_SERVER_UNREACHABLE')
  assert.match(half.message, /^connect request failed: .*response head/)
  answer = (socket) => socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n')
  const garbage = await refusalOf()
  assert.equal(garbage.code, 'TUN_ERR_SERVER_UNREACHABLE')
  assert.match(garbage.message, /^connect request failed: /)
  // A 101 without the welcome: the server is not an apptunnel server of this protocol.
  answer = (socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: apptunnel\r\n\r\n')
  const bare = await refusalOf()
  assert.equal(bare.code, 'TUN_ERR_HANDSHAKE_BAD_REQUEST')
  assert.match(bare.message, /server did not send x-apptunnel-session-id/)
})
