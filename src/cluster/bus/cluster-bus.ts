import type { KeyObject } from 'node:crypto'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { initiateHandshake } from '../auth/client-handshake.ts'
import type { AuthenticatedPeer } from '../auth/handshake-run.ts'
import type { HandshakeKeys } from '../auth/handshake-keys.ts'
import { NonceRegistry } from '../auth/nonce-registry.ts'
import { acceptHandshake } from '../auth/server-handshake.ts'
import type { ClusterAuthStats } from '../auth-stats.ts'
import { clusterEventSchemas, isClusterTopic, type ClusterEventMap, type ClusterTopic } from '../cluster-events.ts'
import type { FrameFormat } from '../wire/frame-decoder.ts'
import { FRAME_ACK, FRAME_EVENT, busFrameFormat, encodeAckPayload, encodeEventPayload, type BusEvent } from './bus-messages.ts'
import type { PeerAddress } from './membership.ts'
import { PeerDialer, type RedialOptions } from './peer-dialer.ts'
import { PeerLink, type PeerLinkInfo } from './peer-link.ts'
import { PeerOutbox } from './peer-outbox.ts'
import { DuplicateFilter } from './duplicate-filter.ts'
import { connected, splitAddress } from './tcp-dial.ts'

export interface ClusterBusOptions {
  nodeId: string
  listen: { host: string; port: number }
  /** absolute deadline of a handshake on either side, in ms [10000] */
  authTimeoutMs: number
  /** largest bus frame payload, in bytes [1 MiB] */
  maxFrameBytes: number
  /** connections still authenticating at once; more are closed at accept [256] */
  maxPendingHandshakes: number
  /** unacknowledged events kept per peer [10000] */
  maxOutboxPerPeer: number
  pingIntervalMs: number
  pingTimeoutMs: number
  redial: RedialOptions
}

/** The key side of the bus: what handshakes need, and whether a link's key is still good. */
export interface BusKeys extends HandshakeKeys {
  stillAccepts(kidHex: string): boolean
}

/**
 * Takes a connection a peer opened to forward one caller connection: the socket is paused, past
 * the handshake, with the bytes that followed it in `peer.leftover`. Always a keyed handshake.
 */
/** An authenticated connection opened to forward one caller connection (ClusterBus.openForward). */
export interface ForwardChannel {
  socket: Socket
  /** this side's send key from the handshake: it MACs the forward header */
  sendKey: KeyObject
}

export type ForwardAcceptor = (socket: Socket, peer: AuthenticatedPeer & { kid: string }) => void

/** `from`: the sending node; `kid`: the key its link authenticated with (null: authentication was disabled). */
export type EventHandler<K extends ClusterTopic> = (data: ClusterEventMap[K], meta: { from: string; kid: string | null }) => void

/**
 * The full mesh between the live nodes of one kind, and publish/subscribe over it.
 *
 * - Links: every pair of nodes has one TCP link; the node with the smaller id dials (so two nodes
 *   never race to build two links), the other accepts. Every link authenticates first (auth/).
 * - Delivery is at-least-once to every peer this node knows (membership or a live link): each
 *   event waits in the peer's outbox until acknowledged, and a link coming back up resends the
 *   outbox. Receivers drop duplicates by (sender incarnation, sequence number), so subscribers see
 *   each event once while both processes live. Events are not delivered to the publisher itself.
 * - Keys: a link whose key is no longer accepted (after a rotation's grace), or an unauthenticated
 *   link once authentication is on again, is closed and redialled with the current key.
 *
 * Events: 'link-up' (PeerLinkInfo), 'link-down' (PeerLinkInfo, TunnelError | undefined).
 */
export class ClusterBus extends EventEmitter {
  readonly #options: ClusterBusOptions
  readonly #keys: BusKeys
  readonly #stats: ClusterAuthStats
  readonly #log: Logger
  readonly #format: FrameFormat
  readonly #nonces = new NonceRegistry()
  readonly #incarnation = randomBytes(6).toString('hex')
  readonly #server: Server
  readonly #handshaking = new Set<Socket>()
  readonly #links = new Map<string, PeerLink>()
  readonly #outboxes = new Map<string, PeerOutbox>()
  readonly #dialers = new Map<string, PeerDialer>()
  readonly #members = new Map<string, string>()
  readonly #subscribers = new Map<string, Set<EventHandler<ClusterTopic>>>()
  readonly #duplicates = new DuplicateFilter()
  readonly #pendingAcks = new Map<PeerLink, number>()
  #ackFlush: NodeJS.Immediate | undefined
  #seq = 0
  #closing: Promise<void> | undefined
  #forwardAcceptor: ForwardAcceptor | undefined
  readonly #forwarding = new Set<Socket>()

  constructor(options: ClusterBusOptions, deps: { keys: BusKeys; stats: ClusterAuthStats; log: Logger }) {
    super()
    this.#options = options
    this.#keys = deps.keys
    this.#stats = deps.stats
    this.#log = deps.log
    this.#format = busFrameFormat(options.maxFrameBytes)
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
  }

  get nodeId(): string {
    return this.#options.nodeId
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      // exclusive: a bus listener is one node's, also for `--workers` workers, which would
      // otherwise share one port 0 through the supervisor and take each other's peers' links.
      this.#server.listen({ port: this.#options.listen.port, host: this.#options.listen.host, exclusive: true }, () => {
        this.#server.off('error', reject)
        const a = this.#server.address()
        if (a === null || typeof a === 'string') reject(new Error('the cluster listener has no address'))
        else resolve({ host: a.address, port: a.port })
      })
    })
  }

  /** The live peers from membership: dial the ones this node is to dial, forget the ones gone. */
  setPeers(peers: readonly PeerAddress[]): void {
    if (this.#closing !== undefined) return
    const wanted = new Map(peers.filter((p) => p.id !== this.nodeId).map((p) => [p.id, p.address]))
    for (const [id, address] of wanted) {
      this.#members.set(id, address)
      if (!this.#outboxes.has(id)) this.#outboxes.set(id, new PeerOutbox(this.#options.maxOutboxPerPeer))
      if (id <= this.nodeId) continue
      const dialer = this.#dialers.get(id)
      if (dialer !== undefined) dialer.setAddress(address)
      else {
        const d = new PeerDialer({ id, address }, this.#options.redial, { connect: (p) => this.#dial(p), log: this.#log })
        this.#dialers.set(id, d)
        d.start()
      }
    }
    for (const id of [...this.#members.keys()]) {
      if (wanted.has(id)) continue
      this.#members.delete(id)
      const dialer = this.#dialers.get(id)
      this.#dialers.delete(id)
      void dialer?.stop()
      // A link that still answers pings stays; only a peer that is gone for good loses its outbox.
      if (!this.#links.has(id)) this.#outboxes.delete(id)
    }
  }

  publish<K extends ClusterTopic>(topic: K, data: ClusterEventMap[K]): void {
    if (this.#closing !== undefined) return
    // Validating our own events too: a malformed one would only be dropped by every receiver.
    const parsed = clusterEventSchemas[topic].safeParse(data)
    if (!parsed.success) throw new TypeError(`invalid ${topic} event: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    const seq = ++this.#seq
    const payload = encodeEventPayload(this.#format, { incarnation: this.#incarnation, seq, topic, data: parsed.data })
    for (const [peerId, outbox] of this.#outboxes) {
      outbox.push(seq, payload)
      this.#pump(peerId)
    }
  }

  subscribe<K extends ClusterTopic>(topic: K, handler: EventHandler<K>): () => void {
    let set = this.#subscribers.get(topic)
    if (set === undefined) this.#subscribers.set(topic, (set = new Set()))
    set.add(handler as EventHandler<ClusterTopic>)
    return () => set.delete(handler as EventHandler<ClusterTopic>)
  }

  /** From now on the CHALLENGE offers forwarding, and forwarded connections go to `acceptor`. */
  acceptForwarded(acceptor: ForwardAcceptor): void {
    this.#forwardAcceptor = acceptor
  }

  /**
   * Opens a connection to a live peer to forward one caller connection over: dialled at the peer's
   * bus address and authenticated like a bus link (with a key, never without), but never a link.
   * Resolves with the socket paused past the handshake, and the key that authenticates what the
   * caller writes first (the forward header); the caller owns the socket from there.
   */
  async openForward(peerId: string): Promise<ForwardChannel> {
    if (this.#closing !== undefined) throw new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the cluster bus is closing')
    const address = this.#members.get(peerId)
    if (address === undefined) throw new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `node ${peerId} is not a live member`)
    const { host, port } = splitAddress(address)
    const socket = connect({ host, port, noDelay: true })
    this.#forwarding.add(socket)
    socket.once('close', () => this.#forwarding.delete(socket))
    try {
      await connected(socket, this.#options.authTimeoutMs, address)
      const peer = await initiateHandshake(socket, {
        nodeId: this.nodeId,
        expectedPeerId: peerId,
        keys: this.#keys,
        nonces: this.#nonces,
        timeoutMs: this.#options.authTimeoutMs,
        stats: this.#stats.client,
        forward: true,
      })
      if (peer.leftover.length > 0) throw new TunnelError('TUN_ERR_CLUSTER_AUTH_PROTOCOL', `node ${peerId} sent data before the forwarded connection began`)
      return { socket, sendKey: peer.linkKeys.send }
    } catch (err) {
      socket.destroy()
      throw err
    }
  }

  links(): PeerLinkInfo[] {
    return [...this.#links.values()].map((l) => ({ ...l.info }))
  }

  /** Unacknowledged events per peer. */
  backlog(): Record<string, number> {
    return Object.fromEntries([...this.#outboxes].map(([id, o]) => [id, o.size]))
  }

  /** Closes links the current keys no longer vouch for; their dialers reconnect with the current key. */
  checkLinks(): void {
    for (const link of [...this.#links.values()]) this.#vouched(link)
  }

  /**
   * Whether the link's key (or its lack of one) is still accepted; if not, the link is closed.
   * Checked for every frame that arrives, not only on timers: an event from a link whose key was
   * retired a moment ago is dropped unacknowledged (its sender resends it over a fresh link), so
   * nothing is ever accepted over a retired key or, once authentication is on, over no key.
   */
  #vouched(link: PeerLink): boolean {
    const kid = link.info.kid
    const mode = this.#keys.mode
    const ok = kid === null ? mode === 'disabled-at-start' || mode === 'disabled-at-run-time' : this.#keys.stillAccepts(kid)
    if (!ok && link.isOpen) {
      this.#log.info({ peerId: link.info.peerId, kid }, 'closing cluster link: its key is no longer accepted')
      link.destroy(new TunnelError('TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY', `the key of the link to ${link.info.peerId} is no longer accepted`))
    }
    return ok
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const dialers = [...this.#dialers.values()]
      this.#dialers.clear()
      const stopped = Promise.all(dialers.map((d) => d.stop()))
      const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
      for (const s of this.#handshaking) s.destroy()
      for (const s of this.#forwarding) s.destroy()
      await stopped
      clearImmediate(this.#ackFlush)
      await Promise.all([...this.#links.values()].map((l) => l.close()))
      await serverClosed
    })()
    return this.#closing
  }

  #accept(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy()
      return
    }
    if (this.#handshaking.size >= this.#options.maxPendingHandshakes) {
      // Refusing costs nothing; letting a flood of idle connections wait out their deadlines would.
      this.#stats.server.failed()
      socket.on('error', () => {})
      socket.destroy()
      this.#log.debug({ remoteAddress: socket.remoteAddress }, 'cluster connection refused: too many handshakes in progress')
      return
    }
    this.#handshaking.add(socket)
    acceptHandshake(socket, {
      nodeId: this.nodeId,
      keys: this.#keys,
      nonces: this.#nonces,
      timeoutMs: this.#options.authTimeoutMs,
      stats: this.#stats.server,
      acceptsForward: this.#forwardAcceptor !== undefined,
    }).then(
      (peer) => {
        this.#handshaking.delete(socket)
        if (peer.forward) {
          const acceptor = this.#forwardAcceptor
          // The handshake refuses FLAG_FORWARD without a key; checked again where it matters.
          if (acceptor === undefined || peer.kid === null || this.#closing !== undefined) {
            socket.destroy()
            return
          }
          this.#forwarding.add(socket)
          socket.once('close', () => this.#forwarding.delete(socket))
          acceptor(socket, { ...peer, kid: peer.kid })
          return
        }
        this.#attach(socket, peer, 'inbound')
      },
      (err: TunnelError) => {
        this.#handshaking.delete(socket)
        if (this.#closing === undefined) this.#log.info({ remoteAddress: socket.remoteAddress, code: err.code, reason: err.message }, 'cluster peer failed authentication')
      },
    )
  }

  async #dial(peer: PeerAddress): Promise<PeerLink> {
    if (this.#closing !== undefined) throw new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the cluster bus is closing')
    const { host, port } = splitAddress(peer.address)
    const socket = connect({ host, port, noDelay: true })
    this.#handshaking.add(socket)
    try {
      await connected(socket, this.#options.authTimeoutMs, peer.address)
      const authenticated = await initiateHandshake(socket, {
        nodeId: this.nodeId,
        expectedPeerId: peer.id,
        keys: this.#keys,
        nonces: this.#nonces,
        timeoutMs: this.#options.authTimeoutMs,
        stats: this.#stats.client,
      })
      const link = this.#attach(socket, authenticated, 'outbound')
      if (link === undefined) throw new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the cluster bus is closing')
      // Closed already (its key was retired while it authenticated): the dialler must try again.
      if (!link.isOpen) throw new TunnelError('TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY', `the link to ${peer.id} authenticated with a key retired meanwhile`)
      return link
    } finally {
      this.#handshaking.delete(socket)
    }
  }

  #attach(socket: Socket, peer: AuthenticatedPeer, direction: PeerLinkInfo['direction']): PeerLink | undefined {
    if (this.#closing !== undefined) {
      socket.destroy()
      return undefined
    }
    const link = new PeerLink(
      socket,
      { peerId: peer.peerId, direction, kid: peer.kid, remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`, since: new Date().toISOString() },
      peer.leftover,
      { format: this.#format, keys: peer.linkKeys, pingIntervalMs: this.#options.pingIntervalMs, pingTimeoutMs: this.#options.pingTimeoutMs },
    )
    const previous = this.#links.get(peer.peerId)
    this.#links.set(peer.peerId, link)
    // A reconnect replaces a link the peer has already given up on (half-open, or pre-rotation).
    previous?.destroy(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `replaced by a new link from ${peer.peerId}`))
    if (!this.#outboxes.has(peer.peerId)) this.#outboxes.set(peer.peerId, new PeerOutbox(this.#options.maxOutboxPerPeer))

    link.on('event', (event: BusEvent) => {
      if (this.#vouched(link)) this.#onEvent(link, event)
    })
    link.on('ack', (seq: number) => {
      if (this.#vouched(link)) this.#outboxes.get(peer.peerId)?.ack(seq)
    })
    link.on('drain', () => this.#pump(peer.peerId))
    link.once('close', (err: TunnelError | undefined) => {
      this.#pendingAcks.delete(link)
      if (this.#links.get(peer.peerId) === link) {
        this.#links.delete(peer.peerId)
        if (!this.#members.has(peer.peerId)) this.#outboxes.delete(peer.peerId)
      }
      if (err?.code === 'TUN_ERR_CLUSTER_BUS_INTEGRITY') {
        // One line per refused frame: the link closes with it, so nothing more comes over it to log.
        this.#stats.busFrameRefused(direction === 'inbound' ? 'server' : 'client')
        this.#log.warn(
          { peerId: peer.peerId, direction, remoteAddress: link.info.remoteAddress, code: err.code, reason: err.message },
          'cluster link closed: a bus frame failed its integrity check (altered, injected, replayed or reflected on the way)',
        )
      } else if (this.#closing === undefined) this.#log.info({ peerId: peer.peerId, direction, code: err?.code, reason: err?.message }, 'cluster link down')
      this.emit('link-down', link.info, err)
    })
    this.#log.info({ peerId: peer.peerId, direction, kid: peer.kid, timeToAuthMs: Math.round(peer.timeToAuthMs * 1000) / 1000 }, 'cluster link up')
    this.emit('link-up', link.info)
    // The check runs once more here: a key change between this handshake and now must not let
    // a link with a retired key (or an unauthenticated one) slip in.
    this.checkLinks()
    if (link.isOpen) this.#pump(peer.peerId)
    return link
  }

  #pump(peerId: string): void {
    const link = this.#links.get(peerId)
    const outbox = this.#outboxes.get(peerId)
    if (link === undefined || outbox === undefined) return
    while (link.writable) {
      const next = outbox.nextAfter(link.sentSeq)
      if (next === undefined) return
      link.sentSeq = next.seq
      link.send(FRAME_EVENT, next.payload)
    }
  }

  #onEvent(link: PeerLink, event: BusEvent): void {
    if (this.#duplicates.isNew(`${link.info.peerId}/${event.incarnation}`, event.seq)) this.#deliver(link.info, event)
    // Acknowledge duplicates too: the sender resent them because our earlier ACK was lost.
    this.#pendingAcks.set(link, Math.max(this.#pendingAcks.get(link) ?? 0, event.seq))
    this.#ackFlush ??= setImmediate(() => this.#flushAcks())
  }

  #deliver(link: PeerLinkInfo, event: BusEvent): void {
    const from = link.peerId
    if (!isClusterTopic(event.topic)) {
      this.#log.debug({ from, topic: event.topic }, 'dropping a cluster event of an unknown topic')
      return
    }
    const parsed = clusterEventSchemas[event.topic].safeParse(event.data)
    if (!parsed.success) {
      this.#log.warn({ from, topic: event.topic }, 'dropping a malformed cluster event')
      return
    }
    for (const handler of this.#subscribers.get(event.topic) ?? []) {
      try {
        handler(parsed.data, { from, kid: link.kid })
      } catch (err) {
        this.#log.error({ err, topic: event.topic }, 'a cluster event subscriber failed')
      }
    }
  }

  #flushAcks(): void {
    this.#ackFlush = undefined
    for (const [link, seq] of this.#pendingAcks) link.send(FRAME_ACK, encodeAckPayload(seq))
    this.#pendingAcks.clear()
  }
}
