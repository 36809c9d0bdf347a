import type { Socket } from 'node:net'
import { TunnelError, isTunnelError, type ErrorCode } from '../../errors/index.ts'
import {
  RequestFramer,
  ResponseFramer,
  serializeErrorResponse,
  type Http1Limits,
  type RequestHead,
  type ResponseHead,
} from '../../protocol/http1/index.ts'
import type { Logger } from '../../observability/index.ts'
import { NO_INGRESS_METRICS, type IngressMetrics } from '../../observability/metrics/index.ts'
import type { AgentSession } from '../agent-gateway/agent-session.ts'
import type { Refusal } from '../../protocol/index.ts'
import { releaseReceived, type RelayStream } from '../../transport/session-mux/index.ts'
import { BULK_CHUNK_BYTES, BulkCork } from '../../transport/bulk-cork.ts'
import { readIntoBuffer } from '../../transport/accepted-socket-reads.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'
import type { HostRouter } from './host-router.ts'
import type { OncePerInterval } from './once-per-interval.ts'
import { FORWARDING_FIELDS, forwardRequestHead, forwardingContext, type ForwardingContext } from './request-head-policy.ts'
import type { AccessLog, AccessLogConnection, AccessRecord } from './access-log.ts'
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
  /** shared by every connection: the warning about bytes an app sent unasked, once per tunnel per interval */
  unsolicitedWarnings: OncePerInterval

  /**
   * With replicas: a session through a replica that holds the tunnel, for when this one holds
   * none (src/server/replica-forward/). Absent on a lone server and on forwarded connections.
   */
  forwarder?: { open(tunnelId: string): AgentSession } | undefined
  /** set on a connection a replica forwarded: the caller's address, proven by the cluster key */
  forwardedFor?: string | undefined
  /** connections per (tunnel, source address); absent: no cap */
  sourceLimits?: SourceLimits | undefined
  /** one line per request (`--access-log`); absent: none */
  accessLog?: AccessLog | undefined
  /** set on a connection a replica forwarded: that replica's node id (the access log says so) */
  forwardedVia?: string | undefined
  /**
   * Makes the client's socket hand each read to `onRead` from a buffer reused after it returns;
   * false: it cannot, and the connection reads 'data' events. Default: readIntoBuffer() into one
   * buffer for every connection of the process (decision 57). Tests pass one that scribbles over
   * the buffer after each read.
   */
  readInto?: ((socket: Socket, onRead: (chunk: Buffer) => void) => boolean) | undefined
}

/**
 * What every ingress connection of the process reads its client into: a read is handled, and what
 * is kept of it copied, before the event loop reads any socket again (decision 57).
 */
const CLIENT_READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)

function readIntoClientBuffer(socket: Socket, onRead: (chunk: Buffer) => void): boolean {
  return readIntoBuffer(socket, CLIENT_READ_BUFFER, onRead)
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
  /** asked to switch protocols: the only request a 101 may answer */
  upgrade: boolean
  /** its access log line, while the access log is on */
  access: AccessRecord | undefined
}

/** A refusal of a request that must wait until every earlier request has had its answer. */
interface QueuedRefusal {
  error: TunnelError
  /** the request whose body was bad, already sent upstream: it gets the refusal, not an answer */
  broken: PendingRequest | undefined
  /** the app answered the broken request anyway: that answer stands and the refusal is dropped */
  answeredByApp: boolean
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
 *
 * What reaches the caller is only what it can rely on (docs/decisions.md §35): a response head is
 * passed on once it is whole and parsed, answers leave in request order (a refused request waits
 * for the answers to those before it), bytes the app sends with no request outstanding are dropped
 * with its connection, and a caller that half-closes after its requests gets the answers the app
 * gives it (the half-close is passed on; the ingress's own side stays open until nothing is owed).
 */
export class IngressConnection {
  readonly #socket: Socket
  readonly #deps: IngressConnectionDeps
  readonly #clientAddress: string
  #forwarding: ForwardingContext | undefined
  readonly #requests: RequestFramer
  /** replaced with a fresh one when the upstream connection is dropped mid-parse (unsolicited bytes) */
  #responses: ResponseFramer
  readonly #metrics: IngressMetrics
  /** metrics clock of the last complete head not yet in #pending: one the ingress may still refuse */
  #headAtMs = NaN
  #tunnelId: string | undefined
  /** bytes received before the first head named the tunnel (the per-tunnel counts get them then) */
  #bytesBeforeTunnel = 0
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
  /** the uncork of each DATA chunk written to the client: bulk leaves in one writev per read */
  readonly #cork: BulkCork
  /** a chunk from the agent is being relayed: #toClient holds its last slice back (#endRelay) */
  #relaying = false
  #heldSlice: Buffer | undefined
  #headTimer: NodeJS.Timeout | undefined
  #upstreamTimer: NodeJS.Timeout | undefined
  #bodyTimer: NodeJS.Timeout | undefined
  /** request body bytes received in the current body window */
  #bodyWindowBytes = 0
  /** the request in its body asked for 100 Continue and has not had an interim answer yet */
  #awaitingContinue = false
  /** the request whose body is being read, already sent upstream */
  #inBody: PendingRequest | undefined
  /** a refused request waiting for earlier answers; nothing more is read from the client meanwhile */
  #queued: QueuedRefusal | undefined
  /** the client half-closed: relay the answers still owed, then close */
  #clientEnded = false
  /** the upstream bytes being parsed were sent with no request outstanding: they are dropped */
  #unsolicited = false
  readonly #access: AccessLog | undefined
  #accessConn: AccessLogConnection | undefined
  /** access line of the last complete head not yet in #pending (like #headAtMs) */
  #headRecord: AccessRecord | undefined
  /** access line of the response now under way (or of the 101 that made the connection raw) */
  #responding: AccessRecord | undefined
  /** the code the connection failed with, for the lines of requests it leaves unanswered */
  #failCode: string | undefined

  constructor(socket: Socket, deps: IngressConnectionDeps) {
    this.#socket = socket
    this.#cork = new BulkCork(socket)
    this.#deps = deps
    this.#metrics = deps.metrics ?? NO_INGRESS_METRICS
    this.#clientAddress = deps.forwardedFor ?? (socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '')
    this.#access = deps.accessLog
    if (this.#access !== undefined) {
      const self = this
      this.#accessConn = { get tunnelId() { return self.#tunnelId }, clientAddress: this.#clientAddress, forwardedFrom: deps.forwardedVia }
    }
    socket.setNoDelay(true)
    socket.setTimeout(deps.timeouts.idleTimeoutMs, () => this.#fail(new TunnelError('TUN_ERR_HTTP_REQUEST_TIMEOUT', 'connection idle for too long'), true))
    this.#requests = new RequestFramer(
      {
        onHead: (head) => this.#onRequestHead(head),
        onBody: (chunk, transient) => this.#onRequestBody(chunk, transient),
        onMessageEnd: () => this.#onRequestEnd(),
      },
      deps.limits,
      FORWARDING_FIELDS,
    )
    this.#responses = this.#newResponseFramer()
    this.#armHeadTimer()
    // A read into the shared buffer is overwritten once handled: what is kept of it is copied.
    const reusedBuffer = (deps.readInto ?? readIntoClientBuffer)(socket, (chunk) => this.#onClientData(chunk, true))
    if (!reusedBuffer) socket.on('data', (chunk: Buffer) => this.#onClientData(chunk, false))
    socket.on('drain', () => {
      const held = this.#heldStream
      this.#heldStream = undefined
      held?.release()
    })
    socket.on('end', () => this.#onClientEnd())
    socket.on('error', () => {})
    socket.on('close', () => this.#onClientClose())
  }

  #newResponseFramer(): ResponseFramer {
    return new ResponseFramer(
      {
        onHead: (head, raw) => this.#onResponseHead(head, raw),
        onBody: (slice) => {
          if (!this.#unsolicited) this.#toClient(slice)
        },
        onMessageEnd: () => {
          if (!this.#unsolicited) this.#onResponseEnd()
        },
        onUpgrade: (rest) => this.#onUpgrade(rest),
      },
      this.#deps.limits,
    )
  }

  // ── client → upstream ────────────────────────────────────────────────────────────────────────

  /** `transient`: `chunk` is a view of the client's read buffer, overwritten once this read is handled. */
  #onClientData(chunk: Buffer, transient: boolean): void {
    this.#metrics.bytesReceived(chunk.length, this.#tunnelId)
    if (this.#tunnelId === undefined) this.#bytesBeforeTunnel += chunk.length
    if (this.#closed || this.#queued !== undefined) return
    if (this.#raw) {
      if (this.#responding !== undefined) this.#responding.bytesIn += chunk.length
      this.#toUpstream(chunk, transient)
      return
    }
    try {
      this.#requests.push(chunk, transient)
    } catch (err) {
      this.#refuseRequest(err)
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
    if (this.#access !== undefined) this.#headRecord = this.#access.begin(head.method, head.target, head.text.length)
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
      this.#metrics.tunnelNamed?.(tunnelId, this.#bytesBeforeTunnel)
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
    const bytes = forwardRequestHead(head, (this.#forwarding ??= forwardingContext(this.#clientAddress, this.#deps.proto)))
    const bodyless = head.body.kind === 'none' || (head.body.kind === 'length' && head.body.length === 0)
    this.#responses.expect(head.method)
    const request: PendingRequest = { head: bytes, replayable: bodyless && !head.upgrade && IDEMPOTENT_METHODS.has(head.method), headAtMs: this.#headAtMs, upgrade: head.upgrade, access: this.#headRecord }
    this.#pending.push(request)
    this.#headAtMs = NaN
    this.#headRecord = undefined
    if (!head.keepAlive) this.#keepAlive = false
    this.#toUpstream(bytes, false)
    if (!bodyless) this.#inBody = request
    if (!bodyless && !head.upgrade) {
      this.#awaitingContinue = head.expectContinue
      this.#armBodyTimer()
    }
  }

  /**
   * A request the ingress refuses (malformed, misdirected, forbidden, ...). Its answer may not
   * overtake those of earlier requests (RFC 9112 §9.3.2: the client pairs answers with requests by
   * order), so with answers still owed it waits, and nothing after it is read: the connection
   * closes once the refusal is sent.
   */
  #refuseRequest(err: unknown): void {
    const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', undefined, { cause: err })
    const broken = this.#inBody
    if (!this.#responseInProgress && this.#pending.every((p) => p === broken)) {
      this.#fail(e, true)
      return
    }
    this.#queued = { error: e, broken, answeredByApp: false }
    this.#socket.pause()
    this.#clearHeadTimer()
    clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
    if (this.#upstreamTimer === undefined && !this.#responseInProgress) this.#armUpstreamTimer()
    this.#deps.log.debug({ code: e.code, tunnelId: this.#tunnelId, owed: this.#pending.length }, 'request refused; answering after the earlier requests')
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
      // Another replica may hold the tunnel: relay through it rather than turn the caller away.
      const forwarded = this.#deps.forwarder?.open(tunnelId)
      if (forwarded !== undefined) {
        this.#bind(forwarded)
        return true
      }
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
          else releaseReceived(chunk)
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

  #onRequestBody(chunk: Buffer, transient: boolean): void {
    this.#bodyWindowBytes += chunk.length
    if (chunk.length > 0) this.#awaitingContinue = false
    const last = this.#pending[this.#pending.length - 1]
    if (last !== undefined && chunk.length > 0) last.replayable = false
    if (this.#inBody?.access !== undefined) this.#inBody.access.bytesIn += chunk.length
    // A view of the client's read, or of a copy the framer held (after a declined upgrade): the framer says which.
    this.#toUpstream(chunk, transient)
  }

  /** `transient`: `chunk` is (a view of) the client's read buffer, overwritten once this read is handled. */
  #toUpstream(chunk: Buffer, transient: boolean): void {
    const stream = this.#stream
    if (stream === undefined || this.#closed || stream.writableEnded) return
    if (this.#unconfirmed !== undefined) {
      this.#unconfirmedBytes += chunk.length
      if (this.#unconfirmedBytes <= MAX_UNCONFIRMED_BYTES) this.#unconfirmed.push(transient ? Buffer.from(chunk) : chunk)
      else this.#unconfirmed = undefined
    }
    if (!(transient ? stream.writeTransient(chunk) : stream.write(chunk))) this.#socket.pause()
  }

  #onRequestEnd(): void {
    this.#inBody = undefined
    clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
    if (this.#pending.length > 0 && !this.#responseInProgress) this.#armUpstreamTimer()
  }

  #onClientEnd(): void {
    this.#clientEnded = true
    if (this.#closed) return
    // The app sees the half-close as it would from the client directly, and decides whether to
    // answer; the connection closes once the last answer owed is out.
    clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
    this.#clearHeadTimer()
    if (this.#stream !== undefined && !this.#stream.writableEnded) this.#stream.end()
    this.#settle()
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

  /** Nothing is owed and nothing is under way: any byte from the upstream now is one nobody asked for. */
  #nothingOwed(): boolean {
    return this.#pending.length === 0 && !this.#responseInProgress
  }

  /**
   * A chunk from the agent, which may be a view of a receive slab (decision 57): it is released once
   * the client's socket is done with every part of it, in the callback of the last write made from
   * it (writes to one socket complete in order), or at once if none was made.
   */
  #onUpstreamData(chunk: Buffer, stream: RelayStream): void {
    this.#relaying = true
    try {
      this.#relayUpstreamData(chunk, stream)
    } finally {
      this.#endRelay(chunk)
    }
  }

  /** Writes what #toClient held back of the chunk now relayed, with the chunk's release. */
  #endRelay(chunk: Buffer): void {
    if (!this.#relaying) return
    this.#relaying = false
    const last = this.#heldSlice
    this.#heldSlice = undefined
    if (last === undefined) releaseReceived(chunk)
    else this.#socket.write(last, () => releaseReceived(chunk))
  }

  #relayUpstreamData(chunk: Buffer, stream: RelayStream): void {
    if (this.#closed) return
    // A small chunk is usually one write (its slices are contiguous, see #toClient): corking it
    // would only queue that write and take it out again.
    const bulk = chunk.length >= BULK_CHUNK_BYTES
    if (this.#raw) {
      if (bulk) this.#socket.cork()
      this.#toClient(chunk)
      this.#endRelay(chunk)
      if (bulk) this.#cork.uncork(chunk.length)
      this.#holdIfFull(stream)
      return
    }
    if (this.#nothingOwed() && this.#responses.bufferedHeadBytes === 0) {
      this.#onUnsolicited()
      return
    }
    // Only what the framer accepted is written (heads whole, then body slices), in one batch.
    if (bulk) this.#socket.cork()
    let failure: { err: unknown } | undefined
    try {
      this.#responses.push(chunk)
    } catch (err) {
      failure = { err }
    }
    // Before the uncork, and before a failure answers: the chunk's last slice goes out in order.
    this.#endRelay(chunk)
    if (bulk) this.#cork.uncork(chunk.length)
    if (this.#closed) return
    if (failure !== undefined && !this.#unsolicited) {
      // Garbage where no response was owed is unsolicited too, not a broken answer.
      if (this.#nothingOwed()) this.#unsolicited = true
      else {
        this.#fail(failure.err, !this.#responseInProgress)
        return
      }
    }
    // The start of a head nobody asked for: it must not be taken for the answer to the next request.
    if (!this.#unsolicited && this.#nothingOwed() && this.#responses.bufferedHeadBytes > 0) this.#unsolicited = true
    if (this.#unsolicited) {
      this.#onUnsolicited()
      return
    }
    this.#holdIfFull(stream)
    this.#settle()
  }

  #toClient(bytes: Buffer): void {
    if (bytes.length === 0) return
    this.#metrics.bytesSent(bytes.length, this.#tunnelId)
    if (this.#access !== undefined) {
      const record = this.#responding ?? this.#pending[0]?.access
      if (record !== undefined) record.bytesOut += bytes.length
    }
    if (!this.#relaying) {
      this.#socket.write(bytes)
      return
    }
    // Inside a chunk from the agent the last write carries its release: hold each slice until the next.
    const held = this.#heldSlice
    if (held !== undefined) {
      // The framer hands a response over as views of the chunk, head then body: where the next
      // view starts where the held one ends, both go out as one write of the bytes they span.
      if (held.buffer === bytes.buffer && held.byteOffset + held.length === bytes.byteOffset) {
        this.#heldSlice = Buffer.from(held.buffer, held.byteOffset, held.length + bytes.length)
        return
      }
      this.#socket.write(held)
    }
    this.#heldSlice = bytes
  }

  #holdIfFull(stream: RelayStream): void {
    if (this.#socket.writableNeedDrain && this.#heldStream !== stream && !this.#closed) {
      // One hold and one 'drain' listener at a time, however many writes a slow client leaves queued.
      this.#heldStream?.release()
      this.#heldStream = stream
      stream.hold()
    }
  }

  /**
   * The app sent bytes with no request outstanding (an unsolicited second response, or garbage).
   * Passed on, the client would take them for the answer to its next request. They are dropped with
   * the upstream connection; the client keeps its own, and its next request opens a fresh one.
   */
  #onUnsolicited(): void {
    this.#unsolicited = false
    const tunnelId = this.#tunnelId ?? ''
    if (this.#deps.unsolicitedWarnings.take(tunnelId)) {
      this.#deps.log.warn({ tunnelId }, 'the app sent bytes after its response, with no request outstanding')
    }
    this.#release()
    this.#responses = this.#newResponseFramer()
    if (!this.#keepAlive) {
      this.#finish()
      return
    }
    this.#settle()
  }

  /**
   * After upstream bytes were handled: a refusal waiting for earlier answers, or a client that
   * half-closed, may be due now.
   */
  #settle(): void {
    if (this.#closed || this.#responseInProgress || this.#raw) return
    const queued = this.#queued
    if (queued !== undefined) {
      if (this.#pending.some((p) => p !== queued.broken)) return
      if (queued.answeredByApp) this.#finish()
      else this.#fail(queued.error, true)
      return
    }
    // A declined upgrade is about to hand the bytes held since back to the request framer.
    if (this.#clientEnded && this.#pending.length === 0 && this.#requests.state !== 'awaiting-upgrade') this.#finish()
  }

  /** Ends the client connection after what was written, and lets the upstream connection go. */
  #finish(): void {
    if (!this.#socket.destroyed && !this.#socket.writableEnded) this.#socket.end()
    this.#close(true)
  }

  #onResponseHead(head: ResponseHead, raw: Buffer): void {
    if (this.#unsolicited) return
    if (this.#pending.length === 0) {
      // No request outstanding: this head answers nothing.
      this.#unsolicited = true
      return
    }
    if (head.statusCode === 101) {
      const asked = this.#pending[0]!
      // A 101 switches only a request that asked to upgrade and has been read whole.
      if (!asked.upgrade || this.#requests.state !== 'awaiting-upgrade') {
        throw new TunnelError('TUN_ERR_UPSTREAM_BAD_RESPONSE', asked.upgrade ? '101 Switching Protocols before the upgrade request was complete' : '101 Switching Protocols to a request that asked for no upgrade')
      }
    }
    if (head.statusCode >= 100 && head.statusCode < 200 && head.statusCode !== 101) {
      this.#interimForwarded = true
      this.#awaitingContinue = false
      this.#toClient(raw)
      return
    }
    this.#clearUpstreamTimer()
    this.#responseInProgress = true
    this.#interimForwarded = false
    this.#attempts = 0
    const answered = this.#pending.shift()
    if (answered !== undefined && answered === this.#queued?.broken) {
      this.#queued.broken = undefined
      this.#queued.answeredByApp = true
    }
    this.#metrics.responseStarted(head.statusCode, answered?.headAtMs ?? NaN, this.#tunnelId)
    if (answered?.access !== undefined) {
      answered.access.status = head.statusCode
      answered.access.session = this.#session?.info
      this.#responding = answered.access
    }
    if (!head.keepAlive) this.#keepAlive = false
    this.#toClient(raw)
  }

  #onResponseEnd(): void {
    this.#responseInProgress = false
    if (this.#responding !== undefined) {
      this.#access!.write(this.#responding, this.#accessConn!)
      this.#responding = undefined
    }
    if (this.#requests.state === 'awaiting-upgrade' && this.#pending.length === 0) {
      // The upstream answered the upgrade request without switching: go on parsing requests.
      queueMicrotask(() => {
        if (this.#closed) return
        try {
          this.#requests.upgradeDeclined()
        } catch (err) {
          this.#refuseRequest(err)
          return
        }
        this.#settle()
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

  #onUpgrade(rest: Buffer): void {
    this.#toClient(rest)
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
      // The framer copied what it held of reused reads.
      if (held.length > 0) this.#toUpstream(held, false)
      // The client half-closed while the upgrade was pending: the byte pipe passes that on now.
      if (this.#clientEnded && this.#stream !== undefined && !this.#stream.writableEnded) this.#stream.end()
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
    for (const chunk of bytes) this.#toUpstream(chunk, false)
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
      this.#metrics.responseStarted(e.httpStatus, this.#pending[0]?.headAtMs ?? this.#headAtMs, this.#tunnelId)
      this.#metrics.bytesSent(response.length, this.#tunnelId)
      if (this.#access !== undefined) this.#accessRefused(e, response.length)
      this.#socket.end(response)
      // A client that never reads must not hold the socket forever.
      setTimeout(() => this.#socket.destroy(), 5000).unref()
    } else {
      this.#socket.destroy()
    }
    this.#failCode ??= e.code
    this.#close(true)
  }

  /** The ingress answers a request itself: its line, with the code. */
  #accessRefused(e: TunnelError, bytes: number): void {
    // The oldest request sent on and unanswered, else the head refused before it was sent on.
    const sent = this.#pending[0]
    const answered = sent !== undefined ? sent.access : this.#headRecord
    if (sent !== undefined) sent.access = undefined
    else this.#headRecord = undefined
    // A connection that idled out between requests answers no request: no line.
    const record = answered ?? (e.code === 'TUN_ERR_HTTP_REQUEST_TIMEOUT' && this.#requests.bufferedHeadBytes === 0 ? undefined : this.#access!.begin(null, null, 0))
    if (record === undefined) return
    if (sent !== undefined) record.session ??= this.#session?.info
    record.status = e.httpStatus
    record.bytesOut += bytes
    this.#access!.write(record, this.#accessConn!, e.code)
  }

  /** The connection ends: requests it leaves without a whole answer get their lines now. */
  #accessUnfinished(): void {
    const access = this.#access!
    const conn = this.#accessConn!
    if (this.#responding !== undefined) access.write(this.#responding, conn, this.#failCode, !this.#raw)
    for (const p of this.#pending) if (p.access !== undefined) access.write(p.access, conn, this.#failCode, true)
    if (this.#headRecord !== undefined) access.write(this.#headRecord, conn, this.#failCode, true)
    this.#responding = undefined
    this.#headRecord = undefined
    for (const p of this.#pending) p.access = undefined
  }

  #close(abortStream = true): void {
    this.#closed = true
    if (this.#access !== undefined) this.#accessUnfinished()
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
