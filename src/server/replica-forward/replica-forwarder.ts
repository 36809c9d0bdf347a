import type { Socket } from 'node:net'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { serializeErrorResponse } from '../../protocol/http1/index.ts'
import type { RelayStream, RelayStreamHandlers } from '../../transport/session-mux/index.ts'
import type { AgentSession } from '../agent-gateway/agent-session.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'
import { encodeForwardHeader } from './forward-header.ts'

/** Bytes of the caller kept while the connection to the peer is set up; past it the caller waits. */
const MAX_BUFFERED_BYTES = 64 * 1024

export interface ReplicaForwarderDeps {
  registry: SessionRegistry
  /** undefined: no such tunnel; else its status and the live replicas that hold sessions of it */
  describeTunnel(tunnelId: string): Promise<{ status: string; otherReplicas?: readonly string[] } | undefined>
  /** an authenticated connection to that replica, paused, ready for the forward header */
  openForward(peerId: string): Promise<Socket>
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
type IngressStreamSurface = Pick<RelayStream, 'closed' | 'writableEnded' | 'writableNeedDrain' | 'write' | 'end' | 'abort' | 'hold' | 'release'>
// Compile-time: the real session and stream offer at least this surface, so the two cannot drift.
type AssertSurface<T extends IngressSessionSurface> = T
export type CheckedAgentSession = AssertSurface<Omit<AgentSession, 'openRelay'> & { openRelay(a: string, h: RelayStreamHandlers): RelayStream }>

class ForwardSession implements IngressSessionSurface {
  readonly info: { sessionId: string }
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
    const stream = new ForwardStream(this.#tunnelId, clientAddress, handlers, this.#deps, (err) => {
      this.#closeReason ??= err
    })
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
  #socket: Socket | undefined
  #buffered: Buffer[] = []
  #bufferedBytes = 0
  #ending = false
  #closed = false
  #held = false
  #answered = false

  constructor(tunnelId: string, clientAddress: string, handlers: RelayStreamHandlers, deps: ReplicaForwarderDeps, onLost: (err: TunnelError) => void) {
    this.#tunnelId = tunnelId
    this.#clientAddress = clientAddress
    this.#handlers = handlers
    this.#deps = deps
    this.#onLost = onLost
    void this.#connect()
  }

  get closed(): boolean {
    return this.#closed
  }

  get writableEnded(): boolean {
    return this.#ending
  }

  get writableNeedDrain(): boolean {
    return this.#socket === undefined ? this.#bufferedBytes > MAX_BUFFERED_BYTES : this.#socket.writableNeedDrain
  }

  write(chunk: Buffer): boolean {
    if (this.#closed || this.#ending) return true
    if (this.#socket !== undefined) return this.#socket.write(chunk)
    this.#buffered.push(chunk)
    this.#bufferedBytes += chunk.length
    return this.#bufferedBytes <= MAX_BUFFERED_BYTES
  }

  end(): void {
    if (this.#closed || this.#ending) return
    this.#ending = true
    this.#socket?.end()
  }

  abort(): void {
    if (this.#closed) return
    this.#closed = true
    this.#socket?.destroy()
  }

  hold(): void {
    this.#held = true
    this.#socket?.pause()
  }

  release(): void {
    this.#held = false
    if (this.#socket !== undefined && !this.#closed) this.#socket.resume()
  }

  async #connect(): Promise<void> {
    let described: Awaited<ReturnType<ReplicaForwarderDeps['describeTunnel']>>
    try {
      described = await this.#deps.describeTunnel(this.#tunnelId)
    } catch (err) {
      this.#lose(isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', undefined, { cause: err }))
      return
    }
    const peers = [...(described?.otherReplicas ?? [])]
    // Spread callers over the replicas that hold the tunnel; try the next when one cannot be reached.
    for (let i = peers.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[peers[i], peers[j]] = [peers[j]!, peers[i]!]
    }
    for (const peerId of peers) {
      if (this.#closed) return
      // A local session may have come up meanwhile; the peer is still right for this request.
      let socket: Socket
      try {
        socket = await this.#deps.openForward(peerId)
      } catch (err) {
        this.#deps.log.debug({ tunnelId: this.#tunnelId, peerId, err: isTunnelError(err) ? err.code : String(err) }, 'could not forward to a replica; trying the next')
        continue
      }
      if (this.#closed) {
        socket.destroy()
        return
      }
      this.#attach(socket, peerId)
      return
    }
    this.#answer(noSessionError(described, peers))
  }

  #attach(socket: Socket, peerId: string): void {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      if (this.#closed) return
      if (!this.#answered) {
        this.#answered = true
        this.#handlers.accepted?.()
      }
      this.#handlers.data(chunk)
    })
    socket.on('end', () => {
      if (this.#closed) return
      this.#closed = true
      this.#handlers.end()
    })
    socket.on('drain', () => {
      if (!this.#closed) this.#handlers.writable()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      if (this.#closed) return
      this.#lose(new TunnelError('TUN_ERR_SESSION_LOST', `the connection to replica ${peerId} closed`))
    })
    socket.write(encodeForwardHeader({ tunnelId: this.#tunnelId, clientAddress: this.#clientAddress }))
    const buffered = this.#buffered
    this.#buffered = []
    this.#bufferedBytes = 0
    let ok = true
    for (const chunk of buffered) ok = socket.write(chunk)
    if (this.#ending) socket.end()
    if (!this.#held) socket.resume()
    if (ok && buffered.length > 0) this.#handlers.writable()
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
    this.#onLost(err)
    this.#handlers.lost(err)
  }
}
