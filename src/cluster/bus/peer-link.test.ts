import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { TunnelError } from '../../errors/index.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { createSecretKey } from 'node:crypto'
import { FrameDecoder } from '../wire/frame-decoder.ts'
import { FrameOpener, FrameSealer, sealedFormat } from '../wire/frame-seal.ts'
import { FRAME_EVENT, FRAME_PING, FRAME_PONG, busFrameFormat, encodeEventPayload } from './bus-messages.ts'
import { PeerLink } from './peer-link.ts'

checkNoLeakedHandles()

const format = busFrameFormat(64 * 1024)
const PING_INTERVAL_MS = 100
const PING_TIMEOUT_MS = 400
// The link's keys as its handshake would have derived them; the test's peer holds the same pair mirrored.
const LINK_SENDS = createSecretKey(Buffer.alloc(32, 1))
const PEER_SENDS = createSecretKey(Buffer.alloc(32, 2))

/**
 * The bus after authentication, over a real loopback connection: the test plays a peer that got
 * through the handshake and then misbehaves. The link is what the bus runs on every such peer.
 */
describe('cluster bus link after authentication', () => {
  let server: Server
  let accepted: Socket[] = []
  let port = 0

  before(async () => {
    server = createServer((s) => accepted.push(s))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as { port: number }).port
  })
  after(() => new Promise<void>((r) => server.close(() => r())))

  async function pair(): Promise<{ link: PeerLink; peer: Socket; seal: FrameSealer; closed: Promise<TunnelError | undefined> }> {
    const n = accepted.length
    const peer = connect(port, '127.0.0.1')
    await once(peer, 'connect')
    while (accepted.length === n) await new Promise((r) => setImmediate(r))
    const socket = accepted[accepted.length - 1]!
    socket.pause()
    const link = new PeerLink(
      socket,
      { peerId: 'peer-b', direction: 'inbound', kid: 'k1', remoteAddress: '127.0.0.1', since: new Date().toISOString() },
      Buffer.alloc(0),
      { format, keys: { send: LINK_SENDS, receive: PEER_SENDS }, pingIntervalMs: PING_INTERVAL_MS, pingTimeoutMs: PING_TIMEOUT_MS, closeTimeoutMs: 200 },
    )
    const closed = new Promise<TunnelError | undefined>((resolve) => link.once('close', resolve))
    peer.on('error', () => {})
    return { link, peer, seal: new FrameSealer(format, PEER_SENDS), closed }
  }

  function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      p.finally(() => clearTimeout(timer)),
      new Promise<T>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms)
      }),
    ])
  }

  test('a peer dripping one frame byte by byte, never finishing it, is dropped by the ping timeout', async () => {
    const { link, peer, seal, closed } = await pair()
    // An event frame announcing 1000 bytes of payload, then one byte every 40 ms: traffic never
    // stops, but no frame ever completes, so no PONG can come back either.
    const frame = seal.seal(FRAME_EVENT, Buffer.alloc(1000, 0x20))
    let i = 0
    const drip = setInterval(() => {
      if (i < frame.length && peer.writable) peer.write(frame.subarray(i, ++i), () => {})
    }, 40)
    peer.once('close', () => clearInterval(drip))
    try {
      const err = await bounded(closed, 10 * PING_TIMEOUT_MS, 'the dripping peer is dropped')
      assert.equal(err?.code, 'TUN_ERR_CLUSTER_CONNECTION_LOST')
      assert.match(err.message, /silent/)
      assert.ok(i < frame.length, 'the frame was still incomplete when the link was dropped')
      assert.equal(link.isOpen, false)
      await bounded(new Promise((r) => (peer.destroyed ? r(undefined) : peer.once('close', r))), 2000, 'the socket is closed')
    } finally {
      clearInterval(drip)
      peer.destroy()
    }
  })

  test('a peer that answers PINGs stays linked past several ping timeouts', async () => {
    const { link, peer, seal, closed } = await pair()
    let pings = 0
    // Answers every PING the link sends, as a healthy node does.
    const decoder = new FrameDecoder(sealedFormat(format))
    const opener = new FrameOpener(LINK_SENDS)
    peer.on('data', (chunk: Buffer) => {
      decoder.push(chunk)
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
        if (opener.open(f).type !== FRAME_PING) continue
        pings++
        peer.write(seal.seal(FRAME_PONG))
      }
    })
    let dropped = false
    void closed.then(() => (dropped = true))
    await new Promise((r) => setTimeout(r, 3 * PING_TIMEOUT_MS))
    assert.equal(dropped, false, 'the link stayed up')
    assert.ok(pings >= 2, `the link pinged the quiet peer (${pings} PINGs)`)
    assert.equal(link.isOpen, true)
    await link.close()
    peer.destroy()
  })

  test('events still flow: a whole event frame reaches the bus', async () => {
    const { link, peer, seal } = await pair()
    const event = { incarnation: 'i1', seq: 1, topic: 'tunnel.changed', data: { tunnelId: 't1', change: 'deleted' } }
    const got = once(link, 'event')
    peer.write(seal.seal(FRAME_EVENT, encodeEventPayload(format, event)))
    const [received] = (await bounded(got, 2000, 'the event arrives')) as [typeof event]
    assert.deepEqual(received, event)
    await link.close()
    peer.destroy()
  })
})
