import type { ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2'
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
import type { AgentSession } from '../agent-gateway/agent-session.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'
import type { HostRouter } from './host-router.ts'
import { rewriteRequestHeaders } from './request-head-policy.ts'

export const AGENT_ERROR_HEADER = 'x-apptunnel-error'
export const AGENT_ERROR_MESSAGE_HEADER = 'x-apptunnel-error-message'

export interface IngressTimeouts {
  /** a request head must arrive completely within this time of its first byte (slowloris) */
  headTimeoutMs: number
  /** a connection with no traffic either way is closed after this */
  idleTimeoutMs: number
  /** the upstream must start its response within this time after the request was sent */
  upstreamResponseTimeoutMs: number
}

export interface IngressConnectionDeps {
  registry: SessionRegistry
  router: HostRouter
  /** explains a tunnel that has no live session: undefined → unknown (404), else its status (503) */
  describeTunnel(tunnelId: string): Promise<{ status: string } | undefined>
  log: Logger
  limits: Partial<Http1Limits>
  timeouts: IngressTimeouts
  maxStreamsPerSession: number
  proto: 'http' | 'https'
  onRequest?: (tunnelId: string) => void
}

/**
 * One public client connection, relayed whole over one stream of an agent session.
 *
 * The ingress parses only what it must: each request head (route, sanitise, refuse smuggling) and
 * each response head (status, body framing, 101), while body bytes pass through untouched. After a
 * 101 both directions become raw byte pipes (WebSocket and other upgrades).
 *
 *   routing ──first head──▶ relaying ──101──▶ raw
 *      │                       │
 *      └──error / close────────┴──▶ closed   (the stream is ended and drained, never reset here)
 */
export class IngressConnection {
  readonly #socket: Socket
  readonly #deps: IngressConnectionDeps
  readonly #clientAddress: string
  readonly #requests: RequestFramer
  readonly #responses: ResponseFramer
  #tunnelId: string | undefined
  #session: AgentSession | undefined
  #stream: ClientHttp2Stream | undefined
  #raw = false
  #closed = false
  /** requests fully or partly sent whose final response has not started */
  #awaitingResponse = 0
  /** bytes of the response now in progress have reached the client */
  #responseInProgress = false
  #headTimer: NodeJS.Timeout | undefined
  #upstreamTimer: NodeJS.Timeout | undefined

  constructor(socket: Socket, deps: IngressConnectionDeps) {
    this.#socket = socket
    this.#deps = deps
    this.#clientAddress = (socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '')
    socket.setNoDelay(true)
    socket.setTimeout(deps.timeouts.idleTimeoutMs, () => this.#fail(new TunnelError('TUN_ERR_HTTP_REQUEST_TIMEOUT', 'connection idle for too long'), true))
    this.#requests = new RequestFramer(
      {
        onHead: (head) => this.#onRequestHead(head),
        onBody: (chunk) => this.#toUpstream(chunk),
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
    socket.on('end', () => this.#onClientEnd())
    socket.on('error', () => {})
    socket.on('close', () => this.#onClientClose())
  }

  // ── client → upstream ────────────────────────────────────────────────────────────────────────

  #onClientData(chunk: Buffer): void {
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
    this.#clearHeadTimer()
    if (head.method === 'CONNECT') throw new TunnelError('TUN_ERR_HTTP_BAD_REQUEST', 'CONNECT is not supported by the ingress')
    if (!head.target.startsWith('/') && !(head.target === '*' && head.method === 'OPTIONS')) {
      throw new TunnelError('TUN_ERR_HTTP_BAD_REQUEST', 'request target must be a path (origin-form)')
    }
    const tunnelId = this.#deps.router.tunnelIdFor(head.host)
    if (this.#stream === undefined) {
      if (tunnelId === undefined) {
        throw new TunnelError('TUN_ERR_INGRESS_UNKNOWN_TUNNEL', `no tunnel answers at host "${head.host ?? ''}"`)
      }
      this.#tunnelId = tunnelId
      this.#openStream(tunnelId)
      if (this.#closed) return
    } else if (tunnelId !== this.#tunnelId) {
      throw new TunnelError('TUN_ERR_INGRESS_MISDIRECTED', 'this connection already carries another tunnel: open a new connection for a different host')
    }
    this.#deps.onRequest?.(this.#tunnelId!)
    const headers = rewriteRequestHeaders(head, { clientAddress: this.#clientAddress, proto: this.#deps.proto })
    this.#responses.expect(head.method)
    this.#awaitingResponse++
    this.#toUpstream(serializeRequestHead({ method: head.method, target: head.target, versionMinor: head.versionMinor, headers }))
  }

  #openStream(tunnelId: string): void {
    const session = this.#deps.registry.pick(tunnelId)
    if (session === undefined) {
      // Pause until we know whether the tunnel exists (404) or is just not connected (503).
      this.#socket.pause()
      this.#deps
        .describeTunnel(tunnelId)
        .then((t) => {
          if (t === undefined) this.#fail(new TunnelError('TUN_ERR_INGRESS_UNKNOWN_TUNNEL', `no tunnel answers at this host`), true)
          else {
            this.#fail(
              new TunnelError('TUN_ERR_INGRESS_NO_SESSION', `the tunnel has no live agent session (tunnel status ${t.status})`, {
                details: { tunnelStatus: t.status },
              }),
              true,
            )
          }
        })
        .catch((err: unknown) => this.#fail(err, true))
      this.#closed = true
      return
    }
    if (session.activeStreams >= this.#deps.maxStreamsPerSession) {
      throw new TunnelError('TUN_ERR_INGRESS_STREAM_LIMIT')
    }
    const stream = session.openRelay(this.#clientAddress)
    this.#session = session
    this.#stream = stream
    stream.on('response', (headers) => this.#onStreamResponse(headers))
    stream.on('data', (chunk: Buffer) => this.#onUpstreamData(chunk))
    stream.on('end', () => this.#onUpstreamEnd())
    stream.on('error', () => {})
    stream.on('close', () => this.#onStreamClose())
    stream.on('drain', () => {
      if (!this.#closed) this.#socket.resume()
    })
  }

  #toUpstream(chunk: Buffer): void {
    const stream = this.#stream
    if (stream === undefined || this.#closed || stream.writableEnded) return
    if (!stream.write(chunk)) this.#socket.pause()
  }

  #onRequestEnd(): void {
    if (this.#awaitingResponse > 0 && !this.#responseInProgress) this.#armUpstreamTimer()
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

  #onStreamResponse(headers: IncomingHttpHeaders): void {
    const status = Number(headers[':status'])
    if (status === 200) return
    const code = String(headers[AGENT_ERROR_HEADER] ?? 'TUN_ERR_UPSTREAM_FAILED')
    const message = headers[AGENT_ERROR_MESSAGE_HEADER]
    const known = code.startsWith('TUN_ERR_UPSTREAM_') ? (code as ErrorCode) : 'TUN_ERR_UPSTREAM_FAILED'
    this.#fail(new TunnelError(known, typeof message === 'string' ? decodeURIComponent(message) : undefined), true)
  }

  #onUpstreamData(chunk: Buffer): void {
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
    if (!this.#socket.write(chunk)) {
      this.#stream?.pause()
      this.#socket.once('drain', () => this.#stream?.resume())
    }
  }

  #onResponseHead(head: ResponseHead): void {
    if (head.statusCode >= 100 && head.statusCode < 200 && head.statusCode !== 101) return
    this.#clearUpstreamTimer()
    this.#responseInProgress = true
    this.#awaitingResponse = Math.max(0, this.#awaitingResponse - 1)
  }

  #onResponseEnd(): void {
    this.#responseInProgress = false
    if (this.#requests.state === 'awaiting-upgrade' && this.#awaitingResponse === 0) {
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
    if (this.#awaitingResponse > 0 && this.#requests.state !== 'body') this.#armUpstreamTimer()
  }

  #onUpgrade(_rest: Buffer): void {
    // The chunk holding the 101 (and whatever followed it) is written whole by #onUpstreamData.
    this.#raw = true
    this.#responseInProgress = false
    this.#awaitingResponse = 0
    this.#clearUpstreamTimer()
    this.#socket.setTimeout(0)
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
      try {
        this.#responses.end()
      } catch (err) {
        this.#fail(err, false)
        return
      }
      if (this.#awaitingResponse > 0 && !this.#responseInProgress) {
        this.#fail(new TunnelError('TUN_ERR_UPSTREAM_FAILED'), true)
        return
      }
    }
    this.#socket.end()
    this.#close(false)
  }

  #onStreamClose(): void {
    if (this.#closed) {
      this.#stream = undefined
      return
    }
    // The stream went away without a clean end: agent reset it or the session died.
    const lost = this.#session?.closeReason ?? new TunnelError('TUN_ERR_SESSION_LOST')
    const err = lost.code === 'TUN_ERR_SESSION_LOST' ? lost : new TunnelError('TUN_ERR_SESSION_LOST', undefined, { cause: lost })
    this.#fail(err, this.#awaitingResponse > 0 && !this.#responseInProgress)
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
      this.#socket.end(serializeErrorResponse(e.httpStatus, e.toJSON()))
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
    const stream = this.#stream
    if (stream !== undefined && !stream.closed && !stream.destroyed) {
      if (abortStream) this.#session?.abortRelay(stream)
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
    return this.#awaitingResponse === 0 && !this.#responseInProgress && !this.#raw && this.#requests.state === 'head' && this.#requests.bufferedHeadBytes === 0
  }
}
