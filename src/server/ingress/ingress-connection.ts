import type { Socket } from 'node:net'
import { TunnelError, isTunnelError, type ErrorCode } from '../../errors/index.ts'
import {
  RequestFramer,
  ResponseFramer,
  serializeErrorResponse,
  serializeRequestHead,
  type Http1Limits,
  type RequestHead,
  type ResponseHead,
} from '../../protocol/http1/index.ts'
import type { Logger } from '../../observability/index.ts'
import { NO_INGRESS_METRICS, type IngressMetrics } from '../../observability/metrics/index.ts'
import type { AgentSession } from '../agent-gateway/agent-session.ts'
import type { Refusal } from '../../protocol/index.ts'
import type { RelayStream } from '../../transport/session-mux/index.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'
import type { HostRouter } from './host-router.ts'
import { rewriteRequestHeaders } from './request-head-policy.ts'
import type { SourceLimits } from './source-limits.ts'

export interface IngressTimeouts {
  /** a request head must arrive completely within this time of its first byte (slowloris) */
  headTimeoutMs: number
  /** a connection with no traffic either way is closed after this */
  idleTimeoutMs: number
  /** the same once a 101 made the connection a byte pipe (WebSocket): longer, but never off */
  upgradedIdleTimeoutMs: number
  /** the upstream must start its response within this time after the request was sent */
  upstreamResponseTimeoutMs: number
  /**
   * A request body must keep coming: in every window of this length at least
   * bodyMinBytesPerSecond × window bytes (slowloris with a body). Time the ingress itself holds
   * the client back (back-pressure, waiting for 100 Continue) does not count.
   */
  bodyTimeoutMs: number
  bodyMinBytesPerSecond: number
}

export interface IngressConnectionDeps {
  registry: SessionRegistry
  router: HostRouter
  /** explains a tunnel that has no live session: undefined → unknown (404), else its status (503) */
  describeTunnel(tunnelId: string): Promise<{ status: string; otherReplicas?: readonly string[] } | undefined>
  log: Logger
  limits: Partial<Http1Limits>
  timeouts: IngressTimeouts
  maxStreamsPerSession: number
  proto: 'http' | 'https'
  onRequest?: (tunnelId: string) => void
  /** who may call which tunnel (linked products); absent: every caller that reaches the ingress */
  access?: { check(tunnelId: string, sourceAddress: string, headers: ReadonlyArray<readonly [string, string]>): void }
  /** responses by status, their durations and bytes each way; absent: nothing is counted */
  metrics?: IngressMetrics | undefined
  /** connections per (tunnel, source address); absent: no cap */
  sourceLimits?: SourceLimits | undefined
}

/** RFC 9110 §9.2.2: a client may repeat these automatically, so the ingress may too. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** bytes kept per new relay stream until the agent confirms it reached the upstream */
const MAX_UNCONFIRMED_BYTES = 64 * 1024
/** relay streams tried for one request before its caller gets the 502 */
const MAX_ATTEMPTS = 3

interface PendingRequest {
  head: Buffer
  /** idempotent and without a body: can be sent again on another session */
  replayable: boolean
  /** metrics clock when the head was complete (request duration) */
  headAtMs: number
}

/**
 * One public client connection, relayed over a stream of an agent session.
 *
 * The ingress parses only what it must: each request head (route, sanitise, refuse smuggling) and
 * each response head (status, body framing, 101), while body bytes pass through untouched. After a
 * 101 both directions become raw byte pipes (WebSocket and other upgrades).
 *
 * The client connection outlives its relay stream: between requests it can move to another session
 * (the session drains, the upstream closed an idle connection, or another session is much less
 * loaded), and a stream lost before the response started is replayed on another session when that
 * cannot duplicate anything. Two cases are safe:
 *   - the agent never confirmed the stream (its 200 comes only once the upstream connection is
 *     open, and it relays nothing before): every byte sent is kept and sent again, any method;
 *   - the session died and every unanswered request is idempotent and had no body.
 *
 *   routing ──first head──▶ relaying ──101──▶ raw
 *      │                     │   ▲ (stream lost or moved between requests: next head opens another)
 *      └──error / close──────┴───┴──▶ closed   (a stream is ended and drained, never reset here)
 */
export class IngressConnection {
  readonly #socket: Socket
  readonly #deps: IngressConnectionDeps
  readonly #clientAddress: string
  readonly #requests: RequestFramer
  readonly #responses: ResponseFramer
  readonly #metrics: IngressMetrics
  /** metrics clock of the last complete head not yet in #pending: one the ingress may still refuse */
  #headAtMs = NaN
  #tunnelId: string | undefined
  #session: AgentSession | undefined
  #stream: RelayStream | undefined
  /** everything written to #stream before the agent confirmed it; undefined once confirmed or too big */
  #unconfirmed: Buffer[] | undefined
  #unconfirmedBytes = 0
  #raw = false
  #closed = false
  /** requests sent (fully or partly) whose final response has not started, oldest first */
  #pending: PendingRequest[] = []
  /** bytes of the response now in progress have reached the client */
  #responseInProgress = false
  /** a 1xx answer reached the client since the last final response */
  #interimForwarded = false
  /** whether the last exchange left the connection reusable (neither side said close) */
  #keepAlive = true
  #attempts = 0
  /** the relay stream told to hold (the client's socket is full), released at the socket's 'drain' */
  #heldStream: RelayStream | undefined
  #headTimer: NodeJS.Timeout | undefined
  #upstreamTimer: NodeJS.Timeout | undefined
  #bodyTimer: NodeJS.Timeout | undefined
  /** request body bytes received in the current body window */
  #bodyWindowBytes = 0
  /** the request in its body asked for 100 Continue and has not had an interim answer yet */
  #awaitingContinue = false

  constructor(socket: Socket, deps: IngressConnectionDeps) {
    this.#socket = socket
    this.#deps = deps
    this.#metrics = deps.metrics ?? NO_INGRESS_METRICS
    this.#clientAddress = (socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '')
    socket.setNoDelay(true)
    socket.setTimeout(deps.timeouts.idleTimeoutMs, () => this.#fail(new TunnelError('TUN_ERR_HTTP_REQUEST_TIMEOUT', 'connection idle for too long'), true))
    this.#requests = new RequestFramer(
      {
        onHead: (head) => this.#onRequestHead(head),
        onBody: (chunk) => this.#onRequestBody(chunk),
        onMessageEnd: () => this.#onRequestEnd(),
      },
      deps.limits,
    )
    this.#responses = new ResponseFramer(
      {
        onHead: (head) => this.#onResponseHead(head),
        onBody: () => {},
        onMessageEnd: () => this.#onResponseEnd(),
        onUpgrade: (rest) => this.#onUpgrade(rest),
      },
      deps.limits,
    )
    this.#armHeadTimer()
    socket.on('data', (chunk: Buffer) => this.#onClientData(chunk))
    socket.on('drain', () => {
      const held = this.#heldStream
      this.#heldStream = undefined
      held?.release()
    })
    socket.on('end', () => this.#onClientEnd())
    socket.on('error', () => {})
    socket.on('close', () => this.#onClientClose())
  }

  // ── client → upstream ────────────────────────────────────────────────────────────────────────

  #onClientData(chunk: Buffer): void {
    this.#metrics.bytesReceived(chunk.length)
    if (this.#closed) return
    if (this.#raw) {
      this.#toUpstream(chunk)
      return
    }
    try {
      this.#requests.push(chunk)
    } catch (err) {
      this.#fail(err, true)
      return
    }
    if (!this.#closed && this.#requests.state === 'head' && this.#requests.bufferedHeadBytes > 0) this.#armHeadTimer()
  }

  #armHeadTimer(): void {
    if (this.#headTimer !== undefined) return
    this.#headTimer = setTimeout(() => {
      this.#headTimer = undefined
      this.#fail(new TunnelError('TUN_ERR_HTTP_REQUEST_TIMEOUT'), true)
    }, this.#deps.timeouts.headTimeoutMs)
  }

  #clearHeadTimer(): void {
    clearTimeout(this.#headTimer)
    this.#headTimer = undefined
  }

  #onRequestHead(head: RequestHead): void {
    this.#headAtMs = this.#metrics.now()
    this.#clearHeadTimer()
    if (head.method === 'CONNECT') throw new TunnelError('TUN_ERR_HTTP_BAD_REQUEST', 'CONNECT is not supported by the ingress')
    if (!head.target.startsWith('/') && !(head.target === '*' && head.method === 'OPTIONS')) {
      throw new TunnelError('TUN_ERR_HTTP_BAD_REQUEST', 'request target must be a path (origin-form)')
    }
    const tunnelId = this.#deps.router.tunnelIdFor(head.host)
    if (this.#tunnelId === undefined) {
      if (tunnelId === undefined) {
        throw new TunnelError('TUN_ERR_INGRESS_UNKNOWN_TUNNEL', `no tunnel answers at host "${head.host ?? ''}"`)
      }
      this.#tunnelId = tunnelId
      this.#countSource(tunnelId)
    } else if (tunnelId !== this.#tunnelId) {
      throw new TunnelError('TUN_ERR_INGRESS_MISDIRECTED', 'this connection already carries another tunnel: open a new connection for a different host')
    }
    // Every request, not once per connection: the credential travels with each request.
    this.#deps.access?.check(this.#tunnelId, this.#clientAddress, head.headers)
    if (this.#stream === undefined || this.#shouldMove(this.#tunnelId)) {
      this.#release()
      if (!this.#openStream(this.#tunnelId)) return
    }
    this.#deps.onRequest?.(this.#tunnelId)
    const headers = rewriteRequestHeaders(head, { clientAddress: this.#clientAddress, proto: this.#deps.proto })
    const bytes = serializeRequestHead({ method: head.method, target: head.target, versionMinor: head.versionMinor, headers })
    const bodyless = head.body.kind === 'none' || (head.body.kind === 'length' && head.body.length === 0)
    this.#responses.expect(head.method)
    this.#pending.push({ head: bytes, replayable: bodyless && !head.upgrade && IDEMPOTENT_METHODS.has(head.method), headAtMs: this.#headAtMs })
    this.#headAtMs = NaN
    if (!head.keepAlive) this.#keepAlive = false
    this.#toUpstream(bytes)
    if (!bodyless && !head.upgrade) {
      this.#awaitingContinue = head.expectContinue
      this.#armBodyTimer()
    }
  }

  /** Counts this connection against its source address until the socket closes, whichever way it closes. */
  #countSource(tunnelId: string): void {
    const lease = this.#deps.sourceLimits?.acquire(tunnelId, this.#clientAddress)
    if (lease === undefined) return
    if (this.#socket.destroyed) lease.release()
    else this.#socket.once('close', () => lease.release())
  }

  #armBodyTimer(): void {
    clearTimeout(this.#bodyTimer)
    this.#bodyWindowBytes = 0
    this.#bodyTimer = setTimeout(() => this.#onBodyWindow(), this.#deps.timeouts.bodyTimeoutMs)
  }

  #onBodyWindow(): void {
    this.#bodyTimer = undefined
    if (this.#closed || this.#requests.state !== 'body') return
    const { bodyTimeoutMs, bodyMinBytesPerSecond } = this.#deps.timeouts
    const needed = Math.ceil((bodyMinBytesPerSecond * bodyTimeoutMs) / 1000)
    // Paused by us (the tunnel is slower than the client) or waiting for our 100: not the client's fault.
    const heldBack = this.#socket.isPaused() || this.#awaitingContinue
    if (heldBack || this.#bodyWindowBytes >= needed) {
      this.#armBodyTimer()
      return
    }
    this.#fail(
      new TunnelError(
        'TUN_ERR_HTTP_REQUEST_TIMEOUT',
        `the request body arrived too slowly: ${this.#bodyWindowBytes} bytes in ${bodyTimeoutMs / 1000} s, at least ${bodyMinBytesPerSecond} bytes per second are needed`,
      ),
      true,
    )
  }

  /** Between exchanges only: leave a session that drains, or one far busier than the best. */
  #shouldMove(tunnelId: string): boolean {
    const current = this.#session
    if (current === undefined) return true
    if (!this.#atBoundary()) return false
    if (!current.isOpen) return true
    const best = this.#deps.registry.pick(tunnelId)
    return best !== undefined && best !== current && best.activeStreams + 1 < current.activeStreams
  }

  /** No request unanswered and no response part-way: the relay stream can be swapped. */
  #atBoundary(): boolean {
    return this.#pending.length === 0 && !this.#responseInProgress && !this.#raw && !this.#responses.inMessage && this.#responses.bufferedHeadBytes === 0
  }

  /** Binds a relay stream on the least loaded session; false when the connection was answered instead. */
  #openStream(tunnelId: string): boolean {
    const session = this.#deps.registry.pick(tunnelId)
    if (session === undefined && this.#deps.registry.isFull(tunnelId, this.#deps.maxStreamsPerSession)) throw this.#streamLimit()
    if (session === undefined) {
      // Pause until we know whether the tunnel exists (404) or is just not connected (503).
      this.#socket.pause()
      this.#closed = true
      this.#deps
        .describeTunnel(tunnelId)
        .then((t) => {
          if (t === undefined) this.#fail(new TunnelError('TUN_ERR_INGRESS_UNKNOWN_TUNNEL', `no tunnel answers at this host`), true)
          else {
            const others = t.otherReplicas ?? []
            const message =
              others.length === 0
                ? `the tunnel has no live agent session (tunnel status ${t.status})`
                : `the tunnel has no live agent session on this replica; it is connected through ${others.join(', ')} (its agents do not reach this replica: check --advertise-url and the agents' --replicas)`
            this.#fail(new TunnelError('TUN_ERR_INGRESS_NO_SESSION', message, { details: { tunnelStatus: t.status } }), true)
          }
        })
        .catch((err: unknown) => this.#fail(err, true))
      return false
    }
    if (session.activeStreams >= this.#deps.maxStreamsPerSession) throw this.#streamLimit()
    this.#bind(session)
    return true
  }

  #streamLimit(): TunnelError {
    return new TunnelError(
      'TUN_ERR_INGRESS_STREAM_LIMIT',
      `every live agent session of the tunnel carries its maximum of relay streams (maxStreamsPerSession ${this.#deps.maxStreamsPerSession}, or the agent's maxStreams if lower)`,
    )
  }

  #bind(session: AgentSession): void {
    // Every handler checks the stream is still ours: a released stream is aborted and forgotten.
    const stream: RelayStream = session.openRelay(
      this.#clientAddress,
      {
        accepted: () => {
          // The agent reached the upstream: from here on bytes may have been delivered.
          if (stream === this.#stream) this.#unconfirmed = undefined
        },
        refused: (refusal) => {
          if (stream === this.#stream) this.#onRefused(refusal)
        },
        data: (chunk) => {
          if (stream === this.#stream) this.#onUpstreamData(chunk, stream)
        },
        end: () => {
          if (stream === this.#stream) this.#onUpstreamEnd()
        },
        lost: () => {
          if (stream === this.#stream) this.#onStreamClose(session)
        },
        writable: () => {
          if (stream === this.#stream && !this.#closed) this.#socket.resume()
        },
        draining: () => this.#onSessionDraining(session),
      },
    )
    this.#session = session
    this.#stream = stream
    this.#unconfirmed = []
    this.#unconfirmedBytes = 0
  }

  /** Lets go of the current relay stream (the agent is asked to close its upstream connection). */
  #release(): void {
    const stream = this.#stream
    this.#stream = undefined
    this.#session = undefined
    this.#unconfirmed = undefined
    this.#unconfirmedBytes = 0
    if (stream !== undefined && !stream.closed) stream.abort()
    this.#resumeClient()
  }

  /**
   * The client may be paused for back-pressure of a stream that is gone now (released, or lost
   * between requests): that stream's writable() will never come, so read on. The next stream's own
   * back-pressure pauses it again if needed.
   */
  #resumeClient(): void {
    if (!this.#closed && this.#socket.isPaused()) this.#socket.resume()
  }

  #onSessionDraining(session: AgentSession): void {
    // Idle connections leave now, so the session can finish; busy ones leave after their exchange.
    if (session === this.#session && !this.#closed && this.#atBoundary() && this.#requests.state === 'head') this.#release()
  }

  #onRequestBody(chunk: Buffer): void {
    this.#bodyWindowBytes += chunk.length
    if (chunk.length > 0) this.#awaitingContinue = false
    const last = this.#pending[this.#pending.length - 1]
    if (last !== undefined && chunk.length > 0) last.replayable = false
    this.#toUpstream(chunk)
  }

  #toUpstream(chunk: Buffer): void {
    const stream = this.#stream
    if (stream === undefined || this.#closed || stream.writableEnded) return
    if (this.#unconfirmed !== undefined) {
      // Kept by reference: the framer hands out slices of socket chunks, which are never reused.
      this.#unconfirmedBytes += chunk.length
      if (this.#unconfirmedBytes <= MAX_UNCONFIRMED_BYTES) this.#unconfirmed.push(chunk)
      else this.#unconfirmed = undefined
    }
    if (!stream.write(chunk)) this.#socket.pause()
  }

  #onRequestEnd(): void {
    clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
    if (this.#pending.length > 0 && !this.#responseInProgress) this.#armUpstreamTimer()
  }

  #onClientEnd(): void {
    // The client finished sending; pass the half-close on, answers may still come back.
    if (this.#stream !== undefined && !this.#stream.writableEnded && !this.#closed) this.#stream.end()
    else if (this.#stream === undefined && !this.#closed) this.#close()
  }

  #onClientClose(): void {
    if (this.#closed && this.#stream === undefined) return
    this.#close()
  }

  // ── upstream → client ────────────────────────────────────────────────────────────────────────

  #onRefused(refusal: Refusal): void {
    const known = refusal.code.startsWith('TUN_ERR_UPSTREAM_') ? (refusal.code as ErrorCode) : 'TUN_ERR_UPSTREAM_FAILED'
    this.#stream = undefined
    this.#fail(new TunnelError(known, refusal.message), true)
  }

  #onUpstreamData(chunk: Buffer, stream: RelayStream): void {
    if (this.#closed) return
    if (!this.#raw) {
      try {
        this.#responses.push(chunk)
      } catch (err) {
        this.#fail(err, !this.#responseInProgress)
        return
      }
      if (this.#closed) return
    }
    this.#metrics.bytesSent(chunk.length)
    if (!this.#socket.write(chunk) && this.#heldStream !== stream) {
      // One hold and one 'drain' listener at a time, however many writes a slow client leaves queued.
      this.#heldStream?.release()
      this.#heldStream = stream
      stream.hold()
    }
  }

  #onResponseHead(head: ResponseHead): void {
    if (head.statusCode >= 100 && head.statusCode < 200 && head.statusCode !== 101) {
      this.#interimForwarded = true
      this.#awaitingContinue = false
      return
    }
    this.#clearUpstreamTimer()
    this.#responseInProgress = true
    this.#interimForwarded = false
    this.#attempts = 0
    const answered = this.#pending.shift()
    this.#metrics.responseStarted(head.statusCode, answered?.headAtMs ?? NaN)
    if (!head.keepAlive) this.#keepAlive = false
  }

  #onResponseEnd(): void {
    this.#responseInProgress = false
    if (this.#requests.state === 'awaiting-upgrade' && this.#pending.length === 0) {
      // The upstream answered the upgrade request without switching: go on parsing requests.
      queueMicrotask(() => {
        if (this.#closed) return
        try {
          this.#requests.upgradeDeclined()
        } catch (err) {
          this.#fail(err, true)
        }
      })
    }
    if (this.#pending.length > 0 && this.#requests.state !== 'body') this.#armUpstreamTimer()
    const session = this.#session
    if (session !== undefined && !session.isOpen) {
      // Runs after the chunk that ended the response has been written to the client.
      queueMicrotask(() => {
        if (session === this.#session) this.#onSessionDraining(session)
      })
    }
  }

  #onUpgrade(_rest: Buffer): void {
    // The chunk holding the 101 (and whatever followed it) is written whole by #onUpstreamData.
    this.#raw = true
    this.#responseInProgress = false
    this.#pending.length = 0
    this.#clearUpstreamTimer()
    // A pipe may be quiet for long (a WebSocket between messages), but one nobody uses must not
    // hold its relay stream for ever: idle upgrades from one caller could fill the tunnel.
    this.#socket.setTimeout(this.#deps.timeouts.upgradedIdleTimeoutMs)
    queueMicrotask(() => {
      if (this.#closed) return
      let held: Buffer
      try {
        held = this.#requests.upgradeAccepted()
      } catch (err) {
        this.#fail(err, false)
        return
      }
      if (held.length > 0) this.#toUpstream(held)
    })
  }

  #onUpstreamEnd(): void {
    if (this.#closed) return
    if (!this.#raw) {
      if (this.#keepAlive && this.#atBoundary() && this.#requests.state === 'head') {
        // The upstream closed an idle keep-alive connection: the client keeps its own, and its
        // next request gets a fresh upstream connection, instead of racing a close it never asked for.
        this.#release()
        return
      }
      try {
        this.#responses.end()
      } catch (err) {
        this.#fail(err, false)
        return
      }
      if (this.#pending.length > 0 && !this.#responseInProgress) {
        this.#fail(new TunnelError('TUN_ERR_UPSTREAM_FAILED'), true)
        return
      }
    }
    this.#socket.end()
    this.#close(false)
  }

  #onStreamClose(session: AgentSession): void {
    if (this.#closed) {
      this.#stream = undefined
      return
    }
    // The stream went away without a clean end: the agent reset it or the session died.
    if (!this.#raw && this.#atBoundary() && this.#requests.state === 'head' && this.#keepAlive) {
      // Nothing was in flight: keep the client; its next request opens a stream elsewhere.
      this.#stream = undefined
      this.#session = undefined
      this.#resumeClient()
      return
    }
    if (this.#replay(session)) return
    const lost = session.closeReason ?? new TunnelError('TUN_ERR_SESSION_LOST')
    const err = lost.code === 'TUN_ERR_SESSION_LOST' ? lost : new TunnelError('TUN_ERR_SESSION_LOST', undefined, { cause: lost })
    this.#fail(err, this.#pending.length > 0 && !this.#responseInProgress)
  }

  /** Sends what the lost stream carried again on another session, when that is safe; see the class comment. */
  #replay(lostSession: AgentSession): boolean {
    if (this.#raw || this.#tunnelId === undefined || this.#attempts + 1 >= MAX_ATTEMPTS) return false
    let bytes: Buffer[] | undefined
    if (this.#unconfirmed !== undefined) bytes = this.#unconfirmed
    else if (
      !lostSession.isOpen &&
      this.#pending.length > 0 &&
      this.#pending.every((p) => p.replayable) &&
      !this.#responseInProgress &&
      !this.#interimForwarded &&
      !this.#responses.inMessage &&
      this.#responses.bufferedHeadBytes === 0 &&
      this.#requests.state === 'head'
    ) {
      bytes = this.#pending.map((p) => p.head)
    }
    if (bytes === undefined) return false
    const next = this.#deps.registry.pick(this.#tunnelId)
    if (next === undefined || next === lostSession || next.activeStreams >= this.#deps.maxStreamsPerSession) return false
    this.#attempts++
    this.#stream = undefined
    this.#session = undefined
    this.#bind(next)
    this.#deps.log.debug({ tunnelId: this.#tunnelId, lostSession: lostSession.info.sessionId, sessionId: next.info.sessionId, requests: this.#pending.length }, 'relay replayed on another session')
    for (const chunk of bytes) this.#toUpstream(chunk)
    // The lost stream may have paused the client for back-pressure; its 'drain' will never come.
    const stream = this.#stream as RelayStream | undefined
    if (this.#socket.isPaused() && stream !== undefined && !stream.writableNeedDrain) this.#socket.resume()
    return true
  }

  #armUpstreamTimer(): void {
    if (this.#upstreamTimer !== undefined) return
    this.#upstreamTimer = setTimeout(() => {
      this.#upstreamTimer = undefined
      this.#fail(new TunnelError('TUN_ERR_UPSTREAM_TIMEOUT'), !this.#responseInProgress)
    }, this.#deps.timeouts.upstreamResponseTimeoutMs)
  }

  #clearUpstreamTimer(): void {
    clearTimeout(this.#upstreamTimer)
    this.#upstreamTimer = undefined
  }

  // ── endings ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Ends the connection because of err. When `answer` is true and no response is under way the
   * client gets a small JSON error with the code; otherwise the connection is just closed (a half
   * sent response cannot be replaced).
   */
  #fail(err: unknown, answer: boolean): void {
    const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', undefined, { cause: err })
    if (e.code === 'TUN_ERR_INTERNAL') this.#deps.log.error({ err }, 'ingress connection failed')
    else this.#deps.log.debug({ code: e.code, tunnelId: this.#tunnelId }, 'ingress connection refused')
    const canAnswer = answer && !this.#responseInProgress && !this.#raw && !this.#socket.destroyed && this.#socket.writable
    this.#closed = true
    if (canAnswer) {
      const response = serializeErrorResponse(e.httpStatus, e.toJSON())
      // The request answered is the oldest unanswered one, or a head refused before it was sent on.
      this.#metrics.responseStarted(e.httpStatus, this.#pending[0]?.headAtMs ?? this.#headAtMs)
      this.#metrics.bytesSent(response.length)
      this.#socket.end(response)
      // A client that never reads must not hold the socket forever.
      setTimeout(() => this.#socket.destroy(), 5000).unref()
    } else {
      this.#socket.destroy()
    }
    this.#close(true)
  }

  #close(abortStream = true): void {
    this.#closed = true
    this.#clearHeadTimer()
    this.#clearUpstreamTimer()
    clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
    const stream = this.#stream
    if (stream !== undefined && !stream.closed) {
      if (abortStream) stream.abort()
      else if (!stream.writableEnded) stream.end()
    }
    if (!this.#socket.destroyed && this.#socket.writableEnded === false && !abortStream) this.#socket.end()
  }

  get tunnelId(): string | undefined {
    return this.#tunnelId
  }

  /** Closes the connection now (server shutdown). */
  destroy(): void {
    this.#socket.destroy()
    this.#close(true)
  }

  /** True while no request is in progress: safe to close during a graceful shutdown. */
  get idle(): boolean {
    return this.#pending.length === 0 && !this.#responseInProgress && !this.#raw && this.#requests.state === 'head' && this.#requests.bufferedHeadBytes === 0
  }
}
