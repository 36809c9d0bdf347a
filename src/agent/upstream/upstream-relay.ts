import { connect, type Socket } from 'node:net'
import { constants as h2c, type ServerHttp2Stream } from 'node:http2'
import type { Logger } from '../../observability/index.ts'
import { NO_AGENT_METRICS, type AgentMetricsSink } from '../../observability/metrics/index.ts'

export const AGENT_ERROR_HEADER = 'x-apptunnel-error'
export const AGENT_ERROR_MESSAGE_HEADER = 'x-apptunnel-error-message'

export interface UpstreamTarget {
  host: string
  port: number
}

/**
 * Pipes one relay stream (one public client connection) to a fresh TCP connection to the upstream
 * port. The server parses and sanitises the HTTP; here bytes only move, with back-pressure both
 * ways through pipe(). Connection failures before anything was relayed are answered with an HTTP/2
 * status and an error code the ingress turns into a 502/504 for the caller.
 */
export class UpstreamRelay {
  readonly #stream: ServerHttp2Stream
  #socket: Socket | undefined
  #done = false
  readonly #metrics: AgentMetricsSink

  constructor(stream: ServerHttp2Stream, target: UpstreamTarget, options: { connectTimeoutMs: number; log: Logger; metrics?: AgentMetricsSink }) {
    this.#stream = stream
    this.#metrics = options.metrics ?? NO_AGENT_METRICS
    stream.on('error', () => this.#teardown())
    stream.on('close', () => this.#teardown())
    const socket = connect({ host: target.host, port: target.port, noDelay: true })
    this.#socket = socket
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!stream.headersSent) {
        const refused = err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENOTFOUND'
        this.#answerError(
          refused ? 'TUN_ERR_UPSTREAM_REFUSED' : 'TUN_ERR_UPSTREAM_FAILED',
          `upstream ${target.host}:${target.port}: ${err.code ?? err.message}`,
        )
      } else {
        this.abort()
      }
    })
    const connectTimer = setTimeout(() => {
      if (!stream.headersSent) this.#answerError('TUN_ERR_UPSTREAM_TIMEOUT', `upstream ${target.host}:${target.port} did not accept the connection in time`)
    }, options.connectTimeoutMs)
    socket.once('connect', () => {
      clearTimeout(connectTimer)
      this.#metrics.upstreamConnected(socket)
      if (this.#done) return
      stream.respond({ ':status': 200 })
      stream.pipe(socket)
      socket.pipe(stream)
    })
    socket.once('close', () => {
      clearTimeout(connectTimer)
      this.#metrics.upstreamClosed(socket)
    })
    stream.once('close', () => clearTimeout(connectTimer))
  }

  #answerError(code: string, message: string): void {
    if (this.#done || this.#stream.destroyed || this.#stream.closed) return
    this.#metrics.upstreamConnectFailed(code)
    this.#stream.respond(
      { ':status': 502, [AGENT_ERROR_HEADER]: code, [AGENT_ERROR_MESSAGE_HEADER]: encodeURIComponent(message) },
      { endStream: true },
    )
    this.#teardown()
  }

  /** Called on the server's request (control stream) or on an upstream failure mid-relay. */
  abort(): void {
    const socket = this.#socket
    // destroy(), not resetAndDestroy(): on Node 20.20 the latter left the TCP handle open for good.
    if (socket !== undefined && !socket.destroyed) socket.destroy()
    // Resets sent by the HTTP/2 server role are not rate-limited by nghttp2, so this side may cancel.
    if (!this.#stream.closed && !this.#stream.destroyed) this.#stream.close(h2c.NGHTTP2_CANCEL)
    this.#teardown()
  }

  #teardown(): void {
    if (this.#done) return
    this.#done = true
    const socket = this.#socket
    if (socket !== undefined && !socket.destroyed) {
      // A clean close means both halves ended (pipe() already ended the socket): let it flush.
      // A reset stream means the caller is gone: close the upstream connection at once.
      const clean = this.#stream.rstCode === undefined || this.#stream.rstCode === h2c.NGHTTP2_NO_ERROR
      if (socket.connecting || !clean || !this.#stream.headersSent) socket.destroy()
      else if (!socket.writableEnded) socket.end()
    }
  }
}
