import assert from 'node:assert/strict'
import { createHmac, randomBytes, type KeyObject } from 'node:crypto'
import { connect, createServer, type Socket } from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import { TunnelError } from '../../errors/index.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { AuthStats } from '../auth-stats.ts'
import { KeyRing } from '../key-ring.ts'
import { FrameDecoder, encodeFrame, type Frame } from '../wire/frame-decoder.ts'
import {
  AUTH_FRAME_FORMAT,
  FLAG_FORWARD,
  FLAG_NO_SECRET,
  FRAME_CHALLENGE,
  FRAME_ERR,
  FRAME_OK,
  FRAME_PROOF,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  decodeChallenge,
  decodeProof,
  encodeChallenge,
  encodeProof,
  type Challenge,
} from './auth-messages.ts'
import { clientMac, deriveClusterKey, deriveLinkKeys, serverMac, transcript } from './auth-transcript.ts'
import { initiateHandshake } from './client-handshake.ts'
import type { AuthenticatedPeer } from './handshake-run.ts'
import type { HandshakeKeys } from './handshake-keys.ts'
import { NonceRegistry } from './nonce-registry.ts'
import { acceptHandshake } from './server-handshake.ts'

checkNoLeakedHandles()

/** A KeyRing that counts the hints a handshake gives the key supplier. */
class TestKeys extends KeyRing {
  suggested = 0
  skipped = 0
  override peerSuggestsKeyChange(): void {
    this.suggested++
  }
  override authSkipped(): void {
    this.skipped++
  }
}

function fakeClock(): { now(): number; advance(ms: number): void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => void (t += ms) }
}

function keysWith(...secrets: string[]): TestKeys {
  const ring = new TestKeys({ graceMs: 60_000, clock: fakeClock() })
  for (const s of secrets) ring.adopt(s)
  return ring
}

type Outcome = AuthenticatedPeer | TunnelError

interface AuthServer {
  port: number
  stats: AuthStats
  nonces: NonceRegistry
  next(): Promise<Outcome>
}

/** A real listener that runs the server side on every connection and records how each ended. */
async function authServer(t: TestContext, options: { nodeId: string; keys: HandshakeKeys; timeoutMs?: number; nonces?: NonceRegistry; acceptsForward?: boolean }): Promise<AuthServer> {
  const stats = new AuthStats()
  const nonces = options.nonces ?? new NonceRegistry()
  const outcomes: Outcome[] = []
  const waiting: Array<(o: Outcome) => void> = []
  const sockets = new Set<Socket>()
  const record = (o: Outcome): void => {
    const w = waiting.shift()
    if (w === undefined) outcomes.push(o)
    else w(o)
  }
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    acceptHandshake(socket, { nodeId: options.nodeId, keys: options.keys, nonces, timeoutMs: options.timeoutMs ?? 5000, stats, acceptsForward: options.acceptsForward === true }).then(
      (peer) => {
        socket.on('error', () => {})
        socket.resume()
        socket.end()
        record(peer)
      },
      (err: TunnelError) => record(err),
    )
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((r) => server.close(r))
  })
  return {
    port: (server.address() as { port: number }).port,
    stats,
    nonces,
    next: () => (outcomes.length > 0 ? Promise.resolve(outcomes.shift()!) : new Promise((r) => waiting.push(r))),
  }
}

async function openSocket(t: TestContext, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  socket.on('error', () => {})
  t.after(() => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return socket
}

/** The genuine client side, as a cluster node runs it. */
async function dial(
  t: TestContext,
  port: number,
  options: { nodeId: string; keys: HandshakeKeys; expectedPeerId?: string; timeoutMs?: number; stats?: AuthStats; nonces?: NonceRegistry; forward?: boolean },
): Promise<Outcome> {
  const socket = await openSocket(t, port)
  return initiateHandshake(socket, {
    nodeId: options.nodeId,
    expectedPeerId: options.expectedPeerId,
    keys: options.keys,
    nonces: options.nonces ?? new NonceRegistry(),
    timeoutMs: options.timeoutMs ?? 5000,
    stats: options.stats ?? new AuthStats(),
    forward: options.forward === true,
  }).then(
    (peer) => {
      socket.destroy()
      return peer
    },
    (err: TunnelError) => err,
  )
}

/** A hand-driven peer: reads auth frames and writes whatever a test tells it to. */
class RawPeer {
  readonly socket: Socket
  readonly #decoder = new FrameDecoder(AUTH_FRAME_FORMAT)
  readonly #frames: Frame[] = []
  readonly #waiting: Array<(f: Frame | undefined) => void> = []
  closed = false

  constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk)
      for (let f = this.#decoder.next(); f !== undefined; f = this.#decoder.next()) {
        const w = this.#waiting.shift()
        if (w === undefined) this.#frames.push(f)
        else w(f)
      }
    })
    socket.on('close', () => {
      this.closed = true
      for (const w of this.#waiting.splice(0)) w(undefined)
    })
  }

  /** The next frame, or undefined once the other side closed. */
  frame(): Promise<Frame | undefined> {
    if (this.#frames.length > 0) return Promise.resolve(this.#frames.shift())
    if (this.closed) return Promise.resolve(undefined)
    return new Promise((r) => this.#waiting.push(r))
  }

  send(type: number, payload: Buffer): void {
    this.socket.write(encodeFrame(AUTH_FRAME_FORMAT, type, payload))
  }

  whenClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((r) => this.socket.once('close', () => r()))
  }
}

/** A listener whose connections a test drives by hand (a fake server). */
async function rawServer(t: TestContext): Promise<{ port: number; accepted(): Promise<RawPeer> }> {
  const peers: RawPeer[] = []
  const waiting: Array<(p: RawPeer) => void> = []
  const sockets = new Set<Socket>()
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {})
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    const peer = new RawPeer(socket)
    const w = waiting.shift()
    if (w === undefined) peers.push(peer)
    else w(peer)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((r) => server.close(r))
  })
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => (peers.length > 0 ? Promise.resolve(peers.shift()!) : new Promise((r) => waiting.push(r))),
  }
}

function proofFor(challenge: Challenge, secret: string, nodeId: string, nonce = randomBytes(NONCE_BYTES)): Buffer {
  const key = deriveClusterKey(secret)
  const body = { version: PROTOCOL_VERSION, flags: 0, kid: key.kid, nonce, nodeId }
  return encodeProof({ ...body, mac: clientMac(key, transcript(challenge, body)) })
}

function codeOf(o: Outcome): string {
  return o instanceof TunnelError ? o.code : 'OK'
}

function assertPeer(o: Outcome): AuthenticatedPeer {
  if (o instanceof TunnelError) assert.fail(`expected success, got ${o.code}: ${o.message}`)
  return o
}

describe('cluster handshake', () => {
  test('both sides authenticate each other and count one success each', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
    const clientStats = new AuthStats()
    const peer = assertPeer(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('K'), expectedPeerId: 'node-a', stats: clientStats }))
    assert.equal(peer.peerId, 'node-a')
    assert.equal(peer.kid, deriveClusterKey('K').kidHex)
    const accepted = assertPeer(await server.next())
    assert.equal(accepted.peerId, 'node-b')
    assert.equal(accepted.kid, peer.kid)
    for (const s of [server.stats.total(), clientStats.total()]) {
      assert.deepEqual([s.authsTotal, s.authsSuccess, s.authsFailed, s.timeToAuthMillis.count], [1, 1, 0, 1])
    }
  })

  test('link keys: each side sends with what the other receives with; they differ per direction and per link', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
    const mac = (k: KeyObject): string => createHmac('sha256', k).update('x').digest('hex')
    const links: Array<{ client: AuthenticatedPeer; server: AuthenticatedPeer }> = []
    for (let i = 0; i < 2; i++) {
      const client = assertPeer(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('K') }))
      links.push({ client, server: assertPeer(await server.next()) })
    }
    for (const l of links) {
      assert.equal(mac(l.client.linkKeys.send), mac(l.server.linkKeys.receive))
      assert.equal(mac(l.server.linkKeys.send), mac(l.client.linkKeys.receive))
      assert.notEqual(mac(l.client.linkKeys.send), mac(l.client.linkKeys.receive), 'directions differ (no reflection)')
    }
    const all = links.flatMap((l) => [mac(l.client.linkKeys.send), mac(l.client.linkKeys.receive)])
    assert.equal(new Set(all).size, 4, 'two links between the same nodes, with the same key, share no link key')
    // Another cluster key gives other link keys for the same transcript: a node without the key
    // cannot compute them from what it saw on the wire.
    const challenge: Challenge = { versionMin: PROTOCOL_VERSION, versionMax: PROTOCOL_VERSION, flags: 0, kid: Buffer.alloc(8), nonce: Buffer.alloc(32, 1), nodeId: 'node-a' }
    const body = { version: PROTOCOL_VERSION, flags: 0, kid: Buffer.alloc(8), nonce: Buffer.alloc(32, 2), nodeId: 'node-b' }
    const tr = transcript(challenge, body)
    assert.notEqual(mac(deriveLinkKeys(deriveClusterKey('K'), tr, 'client').send), mac(deriveLinkKeys(deriveClusterKey('L'), tr, 'client').send))
    assert.notEqual(mac(deriveLinkKeys(deriveClusterKey('K'), tr, 'client').send), mac(deriveLinkKeys(undefined, tr, 'client').send))
  })

  test('wrong key, client side: the server refuses the unknown key id and both re-read their keys', async (t) => {
    const serverKeys = keysWith('right')
    const clientKeys = keysWith('wrong')
    const server = await authServer(t, { nodeId: 'node-a', keys: serverKeys })
    const clientStats = new AuthStats()
    const result = await dial(t, server.port, { nodeId: 'node-b', keys: clientKeys, stats: clientStats })
    assert.equal(codeOf(result), 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY')
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY')
    assert.equal(server.stats.total().authsFailed, 1)
    assert.equal(clientStats.total().authsFailed, 1)
    assert.ok(serverKeys.suggested >= 1 && clientKeys.suggested >= 1, 'both sides schedule a key re-read')
  })

  test('wrong key, client side with the right key id: BAD_PROOF', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('right') })
    const raw = new RawPeer(await openSocket(t, server.port))
    const challenge = decodeChallenge((await raw.frame())!.payload)
    const forged = decodeProof(proofFor(challenge, 'right', 'node-b'))
    forged.mac = randomBytes(32) // the key id is public; the MAC is what cannot be forged
    raw.send(FRAME_PROOF, encodeProof(forged))
    const err = await raw.frame()
    assert.deepEqual([err?.type, err?.payload[0]], [FRAME_ERR, 4])
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_BAD_PROOF')
    await raw.whenClosed()
  })

  test('wrong key, server side: a server that names our key id but cannot prove it gets nothing but the PROOF', async (t) => {
    const fake = await rawServer(t)
    const clientStats = new AuthStats()
    const result = dial(t, fake.port, { nodeId: 'node-b', keys: keysWith('K'), stats: clientStats })
    const peer = await fake.accepted()
    const key = deriveClusterKey('K')
    const challenge: Challenge = { versionMin: PROTOCOL_VERSION, versionMax: PROTOCOL_VERSION, flags: 0, kid: key.kid, nonce: randomBytes(32), nodeId: 'node-a' }
    peer.send(FRAME_CHALLENGE, encodeChallenge(challenge))
    assert.equal((await peer.frame())?.type, FRAME_PROOF)
    peer.send(FRAME_OK, randomBytes(32))
    assert.equal(codeOf(await result), 'TUN_ERR_CLUSTER_AUTH_BAD_PROOF')
    const err = await peer.frame()
    assert.deepEqual([err?.type, err?.payload[0]], [FRAME_ERR, 4], 'the client says why, then closes')
    assert.equal(await peer.frame(), undefined)
    assert.equal(clientStats.total().authsFailed, 1)
  })

  test("a client's own MAC reflected back as the server's proof is refused (role separation)", async (t) => {
    const fake = await rawServer(t)
    const result = dial(t, fake.port, { nodeId: 'node-b', keys: keysWith('K') })
    const peer = await fake.accepted()
    peer.send(FRAME_CHALLENGE, encodeChallenge({ versionMin: PROTOCOL_VERSION, versionMax: PROTOCOL_VERSION, flags: 0, kid: deriveClusterKey('K').kid, nonce: randomBytes(32), nodeId: 'node-a' }))
    const proof = decodeProof((await peer.frame())!.payload)
    peer.send(FRAME_OK, proof.mac)
    assert.equal(codeOf(await result), 'TUN_ERR_CLUSTER_AUTH_BAD_PROOF')
  })

  test("reflection: a node's challenge relayed to its own client, and the proof relayed back, is refused", async (t) => {
    // Node N runs both sides with one nonce registry. The attacker takes N's challenge, poses as
    // peer X to N's client with that same challenge, and hands N's proof back to N's server.
    const keys = keysWith('K')
    const nonces = new NonceRegistry()
    const n = await authServer(t, { nodeId: 'node-n', keys, nonces })
    const toN = new RawPeer(await openSocket(t, n.port))
    const challengeOfN = decodeChallenge((await toN.frame())!.payload)

    const attacker = await rawServer(t)
    const nClient = dial(t, attacker.port, { nodeId: 'node-n', keys, expectedPeerId: 'node-x', nonces, timeoutMs: 3000 })
    const victim = await attacker.accepted()
    victim.send(FRAME_CHALLENGE, encodeChallenge({ ...challengeOfN, nodeId: 'node-x' }))
    const proofOfN = decodeProof((await victim.frame())!.payload)
    assert.equal(proofOfN.nodeId, 'node-n')

    // As it is: the proof names N itself.
    toN.send(FRAME_PROOF, encodeProof(proofOfN))
    assert.equal(codeOf(await n.next()), 'TUN_ERR_CLUSTER_AUTH_REFLECTION')

    // Renamed to some other node: N's client nonce is still in flight, so N recognises it. (And the
    // MAC would not match: it covers both ids.)
    const again = new RawPeer(await openSocket(t, n.port))
    await again.frame()
    again.send(FRAME_PROOF, encodeProof({ ...proofOfN, nodeId: 'node-y' }))
    assert.equal(codeOf(await n.next()), 'TUN_ERR_CLUSTER_AUTH_REFLECTION')
    victim.socket.destroy()
    assert.equal(codeOf(await nClient), 'TUN_ERR_CLUSTER_CONNECTION_LOST')
    assert.equal(n.stats.total().authsSuccess, 0)
    assert.equal(nonces.size, 0, 'nonces are released when handshakes end')
  })

  test('replay: a recorded genuine PROOF fails against a fresh challenge; a recorded OK fails against a fresh proof', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
    // Record a genuine exchange through a relay.
    const fromClient: Buffer[] = []
    const fromServer: Buffer[] = []
    const relaySockets = new Set<Socket>()
    const relay = createServer((inbound) => {
      const outbound = connect({ host: '127.0.0.1', port: server.port })
      for (const s of [inbound, outbound]) {
        relaySockets.add(s)
        s.on('error', () => {})
        s.once('close', () => relaySockets.delete(s))
      }
      inbound.on('data', (c: Buffer) => (fromClient.push(c), outbound.write(c)))
      outbound.on('data', (c: Buffer) => (fromServer.push(c), inbound.write(c)))
      inbound.on('close', () => outbound.destroy())
      outbound.on('close', () => inbound.destroy())
    })
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r))
    t.after(async () => {
      for (const s of relaySockets) s.destroy()
      await new Promise((r) => relay.close(r))
    })
    assertPeer(await dial(t, (relay.address() as { port: number }).port, { nodeId: 'node-b', keys: keysWith('K') }))
    assertPeer(await server.next())

    const replay = new RawPeer(await openSocket(t, server.port))
    await replay.frame()
    replay.socket.write(Buffer.concat(fromClient))
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_BAD_PROOF')

    const fake = await rawServer(t)
    const result = dial(t, fake.port, { nodeId: 'node-b', keys: keysWith('K') })
    const peer = await fake.accepted()
    const recorded = Buffer.concat(fromServer)
    peer.socket.write(recorded.subarray(0, 3 + recorded.readUInt16BE(1)))
    await peer.frame()
    peer.socket.write(recorded.subarray(3 + recorded.readUInt16BE(1)))
    assert.equal(codeOf(await result), 'TUN_ERR_CLUSTER_AUTH_BAD_PROOF')
  })

  test('self-connection: a node dialling its own address stops at the challenge', async (t) => {
    const keys = keysWith('K')
    const server = await authServer(t, { nodeId: 'node-a', keys })
    const result = await dial(t, server.port, { nodeId: 'node-a', keys })
    assert.equal(codeOf(result), 'TUN_ERR_CLUSTER_AUTH_SELF_CONNECTION')
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_SELF_CONNECTION')
    assert.equal(server.stats.total().authsFailed, 1)
  })

  test('another node than the one meant answers: WRONG_PEER', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
    assert.equal(codeOf(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('K'), expectedPeerId: 'node-c' })), 'TUN_ERR_CLUSTER_AUTH_WRONG_PEER')
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_WRONG_PEER')
  })

  test('a version-1 peer (bus frames without MACs) fails clearly both ways, with ERR VERSION', async (t) => {
    // As a server: it offers 1..1 only.
    const fake = await rawServer(t)
    const result = dial(t, fake.port, { nodeId: 'node-b', keys: keysWith('K') })
    const peer = await fake.accepted()
    peer.send(FRAME_CHALLENGE, encodeChallenge({ versionMin: 1, versionMax: 1, flags: 0, kid: deriveClusterKey('K').kid, nonce: randomBytes(32), nodeId: 'node-a' }))
    const refused = await result
    assert.equal(codeOf(refused), 'TUN_ERR_CLUSTER_AUTH_VERSION')
    assert.match((refused as TunnelError).message, /speaks versions 1\.\.1; this node speaks 2/)
    const err = await peer.frame()
    assert.deepEqual([err?.type, err?.payload[0]], [FRAME_ERR, 2])

    // As a client: it proves with version 1, with a MAC that would otherwise verify.
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
    const raw = new RawPeer(await openSocket(t, server.port))
    const c = decodeChallenge((await raw.frame())!.payload)
    assert.deepEqual([c.versionMin, c.versionMax], [2, 2], 'this node offers version 2 only')
    const key = deriveClusterKey('K')
    const body = { version: 1, flags: 0, kid: key.kid, nonce: randomBytes(NONCE_BYTES), nodeId: 'node-b' }
    raw.send(FRAME_PROOF, encodeProof({ ...body, mac: clientMac(key, transcript(c, body)) }))
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_VERSION')
    const back = await raw.frame()
    assert.deepEqual([back?.type, back?.payload[0]], [FRAME_ERR, 2])
  })

  test('a server offering only other versions: VERSION, and the client says so', async (t) => {
    const fake = await rawServer(t)
    const result = dial(t, fake.port, { nodeId: 'node-b', keys: keysWith('K') })
    const peer = await fake.accepted()
    peer.send(FRAME_CHALLENGE, encodeChallenge({ versionMin: PROTOCOL_VERSION + 1, versionMax: PROTOCOL_VERSION + 2, flags: 0, kid: deriveClusterKey('K').kid, nonce: randomBytes(32), nodeId: 'node-a' }))
    assert.equal(codeOf(await result), 'TUN_ERR_CLUSTER_AUTH_VERSION')
    const err = await peer.frame()
    assert.deepEqual([err?.type, err?.payload[0]], [FRAME_ERR, 2])
  })

  describe('frames', () => {
    test('a truncated PROOF followed by a close is a failure, not a timeout', async (t) => {
      const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
      const raw = new RawPeer(await openSocket(t, server.port))
      const challenge = decodeChallenge((await raw.frame())!.payload)
      const proof = encodeFrame(AUTH_FRAME_FORMAT, FRAME_PROOF, proofFor(challenge, 'K', 'node-b'))
      raw.socket.end(proof.subarray(0, 40))
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_CONNECTION_LOST')
      const s = server.stats.total()
      assert.deepEqual([s.authsFailed, s.authsFailedByTimeout], [1, 0])
    })

    test('an oversize length is refused on its header alone, with ERR FRAME_TOO_LARGE', async (t) => {
      const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
      const raw = new RawPeer(await openSocket(t, server.port))
      await raw.frame()
      raw.socket.write(Buffer.of(FRAME_PROOF, 0xff, 0xff))
      const err = await raw.frame()
      assert.deepEqual([err?.type, err?.payload[0]], [FRAME_ERR, 6])
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_FRAME_TOO_LARGE')
      await raw.whenClosed()
    })

    test('lying lengths: too short for a PROOF, a node-id length past the end, and bytes after the PROOF', async (t) => {
      const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
      const short = new RawPeer(await openSocket(t, server.port))
      await short.frame()
      short.send(FRAME_PROOF, Buffer.alloc(10))
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')

      const longId = new RawPeer(await openSocket(t, server.port))
      const challenge = decodeChallenge((await longId.frame())!.payload)
      const proof = proofFor(challenge, 'K', 'node-b')
      proof[2 + 8 + 32] = 100 // claims a 100-byte node id
      longId.send(FRAME_PROOF, proof)
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')

      const extra = new RawPeer(await openSocket(t, server.port))
      const c2 = decodeChallenge((await extra.frame())!.payload)
      extra.socket.write(Buffer.concat([encodeFrame(AUTH_FRAME_FORMAT, FRAME_PROOF, proofFor(c2, 'K', 'node-b')), Buffer.from('early bus bytes')]))
      const e = await server.next()
      assert.equal(codeOf(e), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')
      assert.match((e as TunnelError).message, /before authentication completed/)
      assert.equal(server.stats.total().authsSuccess, 0, 'a valid PROOF with data behind it is still refused')
    })

    test('an unexpected frame type, and a flood of bytes before authentication, are refused', async (t) => {
      const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
      const wrongType = new RawPeer(await openSocket(t, server.port))
      await wrongType.frame()
      wrongType.send(FRAME_OK, Buffer.alloc(32))
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')

      const flood = new RawPeer(await openSocket(t, server.port))
      await flood.frame()
      flood.socket.write(Buffer.concat([Buffer.of(FRAME_PROOF, 0x02, 0x00), Buffer.alloc(1500)]))
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')
      await flood.whenClosed()
    })

    test('one byte per write in both directions still authenticates', async (t) => {
      const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
      const raw = new RawPeer(await openSocket(t, server.port))
      const challenge = decodeChallenge((await raw.frame())!.payload)
      const bytes = encodeFrame(AUTH_FRAME_FORMAT, FRAME_PROOF, proofFor(challenge, 'K', 'node-b'))
      for (const b of bytes) {
        raw.socket.write(Buffer.of(b))
        await new Promise((r) => setImmediate(r))
      }
      assert.equal((await raw.frame())?.type, FRAME_OK)
      assert.equal(assertPeer(await server.next()).peerId, 'node-b')

      const fake = await rawServer(t)
      const result = dial(t, fake.port, { nodeId: 'node-b', keys: keysWith('K') })
      const peer = await fake.accepted()
      const key = deriveClusterKey('K')
      const c: Challenge = { versionMin: PROTOCOL_VERSION, versionMax: PROTOCOL_VERSION, flags: 0, kid: key.kid, nonce: randomBytes(32), nodeId: 'node-a' }
      const drip = async (frame: Buffer): Promise<void> => {
        for (const b of frame) {
          peer.socket.write(Buffer.of(b))
          await new Promise((r) => setImmediate(r))
        }
      }
      await drip(encodeFrame(AUTH_FRAME_FORMAT, FRAME_CHALLENGE, encodeChallenge(c)))
      const proof = decodeProof((await peer.frame())!.payload)
      await drip(encodeFrame(AUTH_FRAME_FORMAT, FRAME_OK, serverMac(key, transcript(c, proof))))
      assert.equal(assertPeer(await result).peerId, 'node-a')
    })
  })

  describe('deadlines', () => {
    test('a client dripping a byte every 40 ms is cut at the absolute deadline and counted as a timeout', async (t) => {
      const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K'), timeoutMs: 300 })
      const started = Date.now()
      const raw = new RawPeer(await openSocket(t, server.port))
      const challenge = decodeChallenge((await raw.frame())!.payload)
      const bytes = encodeFrame(AUTH_FRAME_FORMAT, FRAME_PROOF, proofFor(challenge, 'K', 'node-b'))
      let at = 0
      const drip = setInterval(() => {
        if (!raw.closed && at < bytes.length) raw.socket.write(bytes.subarray(at, ++at))
      }, 40)
      t.after(() => clearInterval(drip))
      const outcome = await server.next()
      clearInterval(drip)
      assert.equal(codeOf(outcome), 'TUN_ERR_CLUSTER_AUTH_TIMEOUT')
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 290, `cut after ${elapsed} ms, not before the deadline`)
      await raw.whenClosed()
      assert.equal(await raw.frame(), undefined, 'a timeout just closes: no ERR frame')
      const s = server.stats.total()
      assert.deepEqual([s.authsTotal, s.authsFailed, s.authsFailedByTimeout], [1, 0, 1])
    })

    test('a server that never speaks: the client gives up at its deadline, counted as a timeout', async (t) => {
      const silent = await rawServer(t)
      const clientStats = new AuthStats()
      const result = dial(t, silent.port, { nodeId: 'node-b', keys: keysWith('K'), timeoutMs: 200, stats: clientStats })
      const peer = await silent.accepted()
      const outcome = await result
      assert.equal(codeOf(outcome), 'TUN_ERR_CLUSTER_AUTH_TIMEOUT')
      assert.match((outcome as TunnelError).message, /never sent its challenge/)
      await peer.whenClosed()
      assert.deepEqual([clientStats.total().authsFailedByTimeout, clientStats.total().authsFailed], [1, 0])
    })
  })

  test('100 concurrent handshakes: exact counters on both sides', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K') })
    const clientStats = new AuthStats()
    const clientKeys = keysWith('K')
    const nonces = new NonceRegistry()
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => dial(t, server.port, { nodeId: `client-${i}`, keys: clientKeys, stats: clientStats, nonces })))
    for (const r of results) assertPeer(r)
    const ids = new Set<string>()
    for (let i = 0; i < 100; i++) ids.add(assertPeer(await server.next()).peerId)
    assert.equal(ids.size, 100)
    for (const s of [server.stats.total(), clientStats.total(), server.stats.takeSnapshot()]) {
      assert.deepEqual([s.authsTotal, s.authsSuccess, s.authsFailed, s.authsFailedByTimeout, s.authsSkippedNoSecret, s.timeToAuthMillis.count], [100, 100, 0, 0, 0, 100])
      assert.equal(Object.values(s.timeToAuthMillis.distributionCounter).reduce((a, b) => a + b, 0), 100)
    }
    assert.equal(server.stats.takeSnapshot().authsTotal, 0)
    assert.equal(nonces.size, 0)
  })

  describe('rotation', () => {
    test('the old key is accepted within the grace and refused after it, in both roles', async (t) => {
      const clock = fakeClock()
      const serverKeys = new TestKeys({ graceMs: 150_000, clock })
      serverKeys.adopt('old')
      serverKeys.adopt('new')
      const server = await authServer(t, { nodeId: 'node-a', keys: serverKeys })
      const oldKid = deriveClusterKey('old').kidHex
      assert.equal(assertPeer(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('old') })).kid, oldKid, 'within grace')
      assertPeer(await server.next())
      // A client that rotated first proves with the server's key while it is still in its own grace.
      const rotatedClient = keysWith('old', 'new')
      assert.equal(assertPeer(await dial(t, server.port, { nodeId: 'node-c', keys: rotatedClient })).kid, deriveClusterKey('new').kidHex)
      assertPeer(await server.next())

      clock.advance(150_000)
      assert.equal(codeOf(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('old') })), 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY', 'after grace')
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY')
    })

    test('rotation between challenge and proof: the proof is judged by the keys accepted when it arrives', async (t) => {
      const clock = fakeClock()
      const serverKeys = new TestKeys({ graceMs: 10_000, clock })
      serverKeys.adopt('old')
      const server = await authServer(t, { nodeId: 'node-a', keys: serverKeys })

      const within = new RawPeer(await openSocket(t, server.port))
      const c1 = decodeChallenge((await within.frame())!.payload)
      assert.equal(c1.kid.toString('hex'), deriveClusterKey('old').kidHex)
      serverKeys.adopt('new')
      within.send(FRAME_PROOF, proofFor(c1, 'old', 'node-b'))
      assert.equal((await within.frame())?.type, FRAME_OK)
      assert.equal(assertPeer(await server.next()).kid, deriveClusterKey('old').kidHex)

      const after = new RawPeer(await openSocket(t, server.port))
      const c2 = decodeChallenge((await after.frame())!.payload)
      serverKeys.adopt('newer')
      clock.advance(10_000)
      after.send(FRAME_PROOF, proofFor(c2, 'new', 'node-b'))
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY')
    })

    test('authentication switched on between challenge and proof: a "no secret" proof is refused', async (t) => {
      const serverKeys = keysWith('')
      const server = await authServer(t, { nodeId: 'node-a', keys: serverKeys })
      const raw = new RawPeer(await openSocket(t, server.port))
      const c = decodeChallenge((await raw.frame())!.payload)
      assert.equal(c.flags & FLAG_NO_SECRET, FLAG_NO_SECRET)
      serverKeys.adopt('K')
      raw.send(FRAME_PROOF, encodeProof({ version: PROTOCOL_VERSION, flags: FLAG_NO_SECRET, kid: Buffer.alloc(8), nonce: randomBytes(32), nodeId: 'node-b', mac: Buffer.alloc(32) }))
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
      assert.equal(server.stats.total().authsSkippedNoSecret, 0)
    })
  })

  describe('disabled authentication', () => {
    test('disabled on both sides (at start, at run time, or mixed): skipped, counted as such, not as a success', async (t) => {
      const disabledAtStart = (): TestKeys => new TestKeys({ disabledAtStart: true, graceMs: 1000 })
      for (const [serverKeys, clientKeys] of [
        [disabledAtStart(), disabledAtStart()],
        [keysWith(''), keysWith('')],
        [keysWith(''), disabledAtStart()],
      ] as const) {
        const server = await authServer(t, { nodeId: 'node-a', keys: serverKeys })
        const clientStats = new AuthStats()
        const peer = assertPeer(await dial(t, server.port, { nodeId: 'node-b', keys: clientKeys, stats: clientStats }))
        assert.equal(peer.kid, null)
        assert.equal(assertPeer(await server.next()).kid, null)
        for (const s of [server.stats.total(), clientStats.total()]) {
          assert.deepEqual([s.authsTotal, s.authsSkippedNoSecret, s.authsSuccess, s.timeToAuthMillis.count], [1, 1, 0, 0])
        }
        assert.equal(serverKeys.skipped, 1, 'the server side reports the skip (the WARN is rate-limited by the key supplier)')
      }
    })

    test('no downgrade: a node with a key refuses a peer without one, in either role', async (t) => {
      const keyed = keysWith('K')
      const server = await authServer(t, { nodeId: 'node-a', keys: keyed })
      const withoutKey = keysWith('')
      assert.equal(codeOf(await dial(t, server.port, { nodeId: 'node-b', keys: withoutKey })), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
      assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
      assert.ok(withoutKey.suggested >= 1, 'the keyless side re-reads its key when refused')

      const open = await authServer(t, { nodeId: 'node-c', keys: new TestKeys({ disabledAtStart: true, graceMs: 1000 }) })
      const clientStats = new AuthStats()
      assert.equal(codeOf(await dial(t, open.port, { nodeId: 'node-b', keys: keysWith('K'), stats: clientStats })), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
      assert.equal(codeOf(await open.next()), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
      assert.deepEqual([clientStats.total().authsFailed, clientStats.total().authsSkippedNoSecret], [1, 0])
      assert.equal(server.stats.total().authsSkippedNoSecret, 0)
    })
  })

  test('forwarding a caller: only with the cluster key, only to a node that offers it, and the purpose is MAC-bound', async (t) => {
    const server = await authServer(t, { nodeId: 'node-a', keys: keysWith('K'), acceptsForward: true })
    assert.equal(assertPeer(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('K'), forward: true })).forward, true)
    assert.equal(assertPeer(await server.next()).forward, true)
    // A bus link to the same node is not a forwarded connection.
    assertPeer(await dial(t, server.port, { nodeId: 'node-b', keys: keysWith('K') }))
    assert.equal(assertPeer(await server.next()).forward, false)
    // Without the key: no forwarding.
    assert.notEqual(codeOf(await dial(t, server.port, { nodeId: 'node-c', keys: keysWith('other'), forward: true })), 'OK')
    assert.notEqual(codeOf(await server.next()), 'OK')
    // Authentication off on the forwarding side: it does not even try.
    const off = new TestKeys({ disabledAtStart: true, graceMs: 60_000, clock: fakeClock() })
    assert.equal(codeOf(await dial(t, server.port, { nodeId: 'node-d', keys: off, forward: true })), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
    await server.next()
    // A node that does not offer forwarding is not sent a caller.
    const plain = await authServer(t, { nodeId: 'node-e', keys: keysWith('K') })
    assert.equal(codeOf(await dial(t, plain.port, { nodeId: 'node-b', keys: keysWith('K'), forward: true })), 'TUN_ERR_CLUSTER_AUTH_PROTOCOL')
    await plain.next()
  })

  test('a node with authentication off refuses a PROOF that asks to forward, even one without a secret', async (t) => {
    const off = new TestKeys({ disabledAtStart: true, graceMs: 60_000, clock: fakeClock() })
    const server = await authServer(t, { nodeId: 'node-a', keys: off, acceptsForward: true })
    const raw = new RawPeer(await openSocket(t, server.port))
    const challenge = decodeChallenge((await raw.frame())!.payload)
    assert.equal(challenge.flags & FLAG_FORWARD, FLAG_FORWARD)
    const body = { version: PROTOCOL_VERSION, flags: FLAG_NO_SECRET | FLAG_FORWARD, kid: Buffer.alloc(8), nonce: randomBytes(NONCE_BYTES), nodeId: 'intruder' }
    raw.send(FRAME_PROOF, encodeProof({ ...body, mac: Buffer.alloc(32) }))
    assert.equal(codeOf(await server.next()), 'TUN_ERR_CLUSTER_AUTH_REQUIRED')
    const answer = await raw.frame()
    assert.equal(answer?.type, FRAME_ERR)
  })
})
