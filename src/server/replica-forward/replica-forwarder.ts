import type { Socket } from 'node:net'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import type { ForwardChannel } from '../../cluster/index.ts'
import { serializeErrorResponse } from '../../protocol/http1/index.ts'
import type { RelayStream, RelayStreamHandlers } from '../../transport/session-mux/index.ts'
import type { AgentSession } from '../agent-gateway/agent-session.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'
import { FORWARD_ACCEPTED, encodeForwardHeader } from './forward-header.ts'

/** Bytes of the caller kept while the connection to the peer is set up; past it the caller waits. */
const MAX_BUFFERED_BYTES = 64 * 1024
/**
 * How long a caller may wait while the replicas that hold the tunnel cannot take it (one starting
 * and not yet linked, one draining) and this one has no session yet: a restart's gap, not an outage.
 */
const FORWARD_WAIT_MS = 5_000
const RETRY_INTERVAL_MS = 100

export interface ReplicaForwarderDeps {
  registry: SessionRegistry
  /** undefined: no such tunnel; else its status and the live replicas that hold sessions of it */
  describeTunnel(tunnelId: string): Promise<{ status: string; otherReplicas?: readonly string[] } | undefined>
  /** an authenticated connection to that replica, paused, ready for the forward header */
  openForward(peerId: string): Promise<ForwardChannel>
  log: Logger
}

/** The answer a caller gets when no replica can serve the tunnel: the same as a lone replica's. */
export function noSessionError(t: { status: string; otherReplicas?: readonly string[] } | undefined, unreachable: readonly string[] = []): TunnelError {
  if (t === undefined) return new TunnelError('TUN_ERR_INGRESS_UNKNOWN_TUNNEL', 'no tunnel answers at this host')
  const message =
    unreachable.length === 0
      ? `the tunnel has no live agent session (tunnel status ${t.status})`
      : `the tunnel has no live agent session on this replica, and the replicas that have one (${unreachable.join(', ')}) could not be reached over the cluster listener`
  return new TunnelError('TUN_ERR_INGRESS_NO_SESSION', message, { details: { tunnelStatus: t.status } })
}

/**
 * Serves a caller connection through another replica when this one holds no session of the
 * tunnel (decision 37). To the ingress connection it looks like one more agent session with one
 * relay stream, so everything the ingress does (parsing, access checks, timeouts, back-pressure,
 * upgrades) runs unchanged on this side; the peer runs its own ingress on the bytes it receives,
 * with the caller's address from the forward header and with forwarding off, so nothing is
 * forwarded twice.
 *
 * The stream is bound at once and buffers the caller's bytes while it looks up the replicas that
 * hold the tunnel and connects to one; if none holds it, or none can be reached, the caller gets
 * the same 404 or 503 a replica without forwarding would give.
 */
export class ReplicaForwarder {
  readonly #deps: ReplicaForwarderDeps
  #seq = 0

  constructor(deps: ReplicaForwarderDeps) {
    this.#deps = deps
  }

  /** A one-stream pseudo session through a peer; typed as the agent session the ingress binds. */
  open(tunnelId: string): AgentSession {
    const session = new ForwardSession(tunnelId, `forward-${++this.#seq}`, this.#deps)
    // The ingress uses only the members ForwardSession has (checked by IngressSessionSurface below).
    return session as unknown as AgentSession
  }
}

/** What an ingress connection uses of a session; AgentSession and ForwardSession must both offer it. */
type IngressSessionSurface = Pick<AgentSession, 'isOpen' | 'activeStreams' | 'closeReason'> & {
  info: Pick<AgentSession['info'], 'sessionId'>
  openRelay(clientAddress: string, handlers: RelayStreamHandlers): IngressStreamSurface
}
/** What an ingress connection uses of a relay stream. */
type IngressStreamSurface = Pick<RelayStream, 'closed' | 'writableEnded' | 'writableNeedDrain' | 'write' | 'writeTransient' | 'end' | 'abort' | 'hold' | 'release'>
// Compile-time: the real session and stream offer at least this surface, so the two cannot drift.
type AssertSurface<T extends IngressSessionSurface> = T
export type CheckedAgentSession = AssertSurface<Omit<AgentSession, 'openRelay'> & { openRelay(a: string, h: RelayStreamHandlers): RelayStream }>

class ForwardSession implements IngressSessionSurface {
  /** peerId: the replica the caller's bytes go to, once connected (the access log names it) */
  readonly info: { sessionId: string; peerId?: string }
  readonly #tunnelId: string
  readonly #deps: ReplicaForwarderDeps
  #stream: ForwardStream | undefined
  #closeReason: TunnelError | undefined

  constructor(tunnelId: string, sessionId: string, deps: ReplicaForwarderDeps) {
    this.info = { sessionId }
    this.#tunnelId = tunnelId
    this.#deps = deps
  }

  /** Open while no local session exists: once one does, the connection moves to it between requests. */
  get isOpen(): boolean {
    return this.#closeReason === undefined && this.#deps.registry.pick(this.#tunnelId) === undefined
  }

  get activeStreams(): number {
    return this.#stream !== undefined && !this.#stream.closed ? 1 : 0
  }

  get closeReason(): TunnelError | undefined {
    return this.#closeReason
  }

  openRelay(clientAddress: string, handlers: RelayStreamHandlers): ForwardStream {
    if (this.#stream !== undefined) throw new TunnelError('TUN_ERR_INTERNAL', 'a forwarded connection carries one relay stream')
    const stream = new ForwardStream(
      this.#tunnelId,
      clientAddress,
      handlers,
      this.#deps,
      (err) => {
        this.#closeReason ??= err
      },
      (peerId) => {
        this.info.peerId = peerId
      },
    )
    this.#stream = stream
    return stream
  }
}

class ForwardStream implements IngressStreamSurface {
  readonly #tunnelId: string
  readonly #clientAddress: string
  readonly #handlers: RelayStreamHandlers
  readonly #deps: ReplicaForwarderDeps
  readonly #onLost: (err: TunnelError) => void
  readonly #onPeer: (peerId: string) => void
  /** where the bytes go once known: a peer's connection, or a relay stream of a local session */
  #socket: Socket | undefined
  #local: RelayStream | undefined
  #buffered: Buffer[] = []
  #bufferedBytes = 0
  #ending = false
  #closed = false
  #held = false
  #answered = false
  #replayable = true
  #retry: NodeJS.Timeout | undefined

  constructor(tunnelId: string, clientAddress: string, handlers: RelayStreamHandlers, deps: ReplicaForwarderDeps, onLost: (err: TunnelError) => void, onPeer: (peerId: string) => void) {
    this.#tunnelId = tunnelId
    this.#clientAddress = clientAddress
    this.#handlers = handlers
    this.#deps = deps
    this.#onLost = onLost
    this.#onPeer = onPeer
    void this.#route(Date.now() + FORWARD_WAIT_MS)
  }

  get closed(): boolean {
    return this.#local?.closed ?? this.#closed
  }

  get writableEnded(): boolean {
    return this.#local?.writableEnded ?? this.#ending
  }

  get writableNeedDrain(): boolean {
    if (this.#local !== undefined) return this.#local.writableNeedDrain
    return this.#socket === undefined ? this.#bufferedBytes > MAX_BUFFERED_BYTES : this.#socket.writableNeedDrain
  }

  /** write() of a chunk whose memory is reused once this returns: kept or queued, it is copied. */
  writeTransient(chunk: Buffer): boolean {
    if (this.#local !== undefined) return this.#local.writeTransient(chunk)
    return this.write(Buffer.from(chunk))
  }

  write(chunk: Buffer): boolean {
    if (this.#local !== undefined) return this.#local.write(chunk)
    if (this.#closed || this.#ending) return true
    if (this.#socket !== undefined) {
      this.#keep(chunk)
      return this.#socket.write(chunk)
    }
    this.#keep(chunk)
    return this.#bufferedBytes <= MAX_BUFFERED_BYTES
  }

  /** Kept until the peer confirms it took the connection: a refusal sends them elsewhere. */
  #keep(chunk: Buffer): void {
    if (this.#answered || !this.#replayable) return
    this.#buffered.push(chunk)
    this.#bufferedBytes += chunk.length
    if (this.#socket !== undefined && this.#bufferedBytes > MAX_BUFFERED_BYTES) {
      // Too much to keep: a refusal now ends the caller's connection instead of trying elsewhere.
      this.#replayable = false
      this.#buffered = []
      this.#bufferedBytes = 0
    }
  }

  end(): void {
    if (this.#local !== undefined) return this.#local.end()
    if (this.#closed || this.#ending) return
    this.#ending = true
    this.#socket?.end()
  }

  abort(): void {
    if (this.#local !== undefined) return this.#local.abort()
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retry)
    this.#socket?.destroy()
  }

  hold(): void {
    this.#held = true
    if (this.#local !== undefined) this.#local.hold()
    else this.#socket?.pause()
  }

  release(): void {
    this.#held = false
    if (this.#local !== undefined) this.#local.release()
    else if (this.#socket !== undefined && !this.#closed) this.#socket.resume()
  }

  /**
   * A local session if one came up, else a replica that holds the tunnel; while the replicas that
   * hold it cannot take the caller (starting, draining), tries again until `deadline`. A tunnel
   * unknown or connected nowhere is answered at once, as a lone replica would.
   */
  async #route(deadline: number): Promise<void> {
    if (this.#closed) return
    const local = this.#deps.registry.pick(this.#tunnelId)
    if (local !== undefined) {
      this.#useLocal(local)
      return
    }
    let described: Awaited<ReturnType<ReplicaForwarderDeps['describeTunnel']>>
    try {
      described = await this.#deps.describeTunnel(this.#tunnelId)
    } catch (err) {
      this.#lose(isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', undefined, { cause: err }))
      return
    }
    const peers = [...(described?.otherReplicas ?? [])]
    if (described === undefined || peers.length === 0) {
      this.#answer(noSessionError(described))
      return
    }
    // Spread callers over the replicas that hold the tunnel; try the next when one cannot be reached.
    for (let i = peers.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[peers[i], peers[j]] = [peers[j]!, peers[i]!]
    }
    for (const peerId of peers) {
      if (this.#closed) return
      let channel: ForwardChannel
      try {
        channel = await this.#deps.openForward(peerId)
      } catch (err) {
        this.#deps.log.debug({ tunnelId: this.#tunnelId, peerId, err: isTunnelError(err) ? err.code : String(err) }, 'could not forward to a replica; trying the next')
        continue
      }
      if (this.#closed) {
        channel.socket.destroy()
        return
      }
      this.#attach(channel, peerId, deadline, peers)
      return
    }
    this.#again(deadline, peers)
  }

  #again(deadline: number, peers: readonly string[]): void {
    if (this.#closed) return
    if (Date.now() >= deadline) {
      this.#answer(noSessionError({ status: 'CONNECTED', otherReplicas: peers }, peers))
      return
    }
    this.#retry = setTimeout(() => void this.#route(deadline), RETRY_INTERVAL_MS)
  }

  #useLocal(session: AgentSession): void {
    const stream = session.openRelay(this.#clientAddress, this.#handlers)
    this.#local = stream
    for (const chunk of this.#buffered) stream.write(chunk)
    this.#buffered = []
    this.#bufferedBytes = 0
    if (this.#ending) stream.end()
    if (this.#held) stream.hold()
    this.#handlers.writable()
  }

  #attach({ socket, sendKey }: ForwardChannel, peerId: string, deadline: number, peers: readonly string[]): void {
    this.#socket = socket
    this.#onPeer(peerId)
    socket.setNoDelay(true)
    const refused = (): void => {
      // Closed before its accept byte: the peer never served it (draining): try again.
      socket.destroy()
      this.#socket = undefined
      if (!this.#replayable) this.#lose(new TunnelError('TUN_ERR_SESSION_LOST', `replica ${peerId} did not take the forwarded connection`))
      else this.#again(deadline, peers)
    }
    socket.on('data', (chunk: Buffer) => {
      if (this.#closed || this.#socket !== socket) return
      if (!this.#answered) {
        if (chunk[0] !== FORWARD_ACCEPTED[0]) {
          this.#lose(new TunnelError('TUN_ERR_CLUSTER_BUS_PROTOCOL', `replica ${peerId} answered a forwarded connection with something else`))
          return
        }
        this.#answered = true
        this.#buffered = []
        this.#bufferedBytes = 0
        this.#handlers.accepted?.()
        chunk = chunk.subarray(1)
        if (chunk.length === 0) return
      }
      this.#handlers.data(chunk)
    })
    socket.on('end', () => {
      if (this.#closed || this.#socket !== socket) return
      if (!this.#answered) return refused()
      this.#closed = true
      this.#handlers.end()
    })
    socket.on('drain', () => {
      if (!this.#closed && this.#socket === socket) this.#handlers.writable()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      if (this.#closed || this.#socket !== socket) return
      if (!this.#answered) return refused()
      this.#lose(new TunnelError('TUN_ERR_SESSION_LOST', `the connection to replica ${peerId} closed`))
    })
    socket.write(encodeForwardHeader({ tunnelId: this.#tunnelId, clientAddress: this.#clientAddress }, sendKey))
    let ok = true
    for (const chunk of this.#buffered) ok = socket.write(chunk)
    if (this.#ending) socket.end()
    if (!this.#held) socket.resume()
    if (ok) this.#handlers.writable()
    this.#deps.log.debug({ tunnelId: this.#tunnelId, peerId }, 'caller connection forwarded to another replica')
  }

  /** No replica could take the caller: answer as a lone replica would, as if the upstream had. */
  #answer(err: TunnelError): void {
    if (this.#closed) return
    this.#closed = true
    this.#onLost(err)
    this.#handlers.accepted?.()
    this.#handlers.data(serializeErrorResponse(err.httpStatus, err.toJSON()))
    this.#handlers.end()
  }

  #lose(err: TunnelError): void {
    if (this.#closed) return
    this.#closed = true
    this.#socket?.destroy()
    this.#onLost(err)
    this.#handlers.lost(err)
  }
}
