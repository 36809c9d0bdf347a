import { connect, type Socket } from 'node:net'
import type { Logger } from '../../observability/index.ts'
import { NO_AGENT_METRICS, type AgentMetricsSink } from '../../observability/metrics/index.ts'
import { releaseReceived, type RelayStream } from '../../transport/session-mux/index.ts'
import { BULK_CHUNK_BYTES, BulkCork } from '../../transport/bulk-cork.ts'

/**
 * What every upstream socket of the process reads into. A read is handed to its callback, which
 * copies it into the session's batch (or keeps a copy while the stream waits for credit), before
 * the event loop reads any socket again, so one buffer serves them all: no memory is allocated
 * per read, and no dead read buffers pile up for the garbage collector.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)

export interface UpstreamTarget {
  host: string
  port: number
}

/**
 * Pipes one relay stream (one public client connection) to a fresh TCP connection to the upstream
 * port. The server parses and sanitises the HTTP; here bytes only move, with back-pressure both
 * ways (the stream's credit one way, the socket's buffer the other). Connection failures before
 * anything was relayed are answered with a refusal and an error code the ingress turns into a
 * 502/504 for the caller.
 */
export class UpstreamRelay {
  readonly #stream: RelayStream
  readonly #socket: Socket
  readonly #metrics: AgentMetricsSink
  #done = false

  constructor(stream: RelayStream, target: UpstreamTarget, options: { connectTimeoutMs: number; log: Logger; metrics?: AgentMetricsSink }) {
    this.#stream = stream
    this.#metrics = options.metrics ?? NO_AGENT_METRICS
    const socket = connect({
      host: target.host,
      port: target.port,
      noDelay: true,
      // false pauses reading (Node stops the handle) until socket.resume() on writable().
      onread: { buffer: READ_BUFFER, callback: (n) => stream.writeTransient(READ_BUFFER.subarray(0, n)) },
    })
    this.#socket = socket
    const connectTimer = setTimeout(() => {
      this.#refuse('TUN_ERR_UPSTREAM_TIMEOUT', `upstream ${target.host}:${target.port} did not accept the connection in time`)
    }, options.connectTimeoutMs)
    const cork = new BulkCork(socket)
    stream.attach({
      // Bytes may come before the upstream connection is open: the socket keeps them until then,
      // and the stream's window bounds how many.
      data: (chunk) => {
        // After the upstream closed, what the caller still sends has nowhere to go.
        if (socket.destroyed || socket.writableEnded) {
          releaseReceived(chunk)
          return
        }
        // A small chunk (a request) is one write: corking it would only queue it and take it out
        // again. It still waits behind a bulk chunk's cork of the same turn.
        const bulk = chunk.length >= BULK_CHUNK_BYTES
        if (bulk) socket.cork()
        // The chunk lies in a receive slab of the session: reusable once the kernel has it, and
        // the callback runs also for a write the socket's end or destruction cut short.
        const more = socket.write(chunk, () => releaseReceived(chunk))
        if (bulk) cork.uncork(chunk.length)
        if (!more) stream.hold()
      },
      end: () => {
        if (!socket.destroyed) socket.end()
      },
      lost: () => this.#teardown(),
      writable: () => socket.resume(),
    })
    socket.on('drain', () => stream.release())
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!stream.accepted) {
        const refused = err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENOTFOUND'
        this.#refuse(refused ? 'TUN_ERR_UPSTREAM_REFUSED' : 'TUN_ERR_UPSTREAM_FAILED', `upstream ${target.host}:${target.port}: ${err.code ?? err.message}`)
      } else {
        this.abort()
      }
    })
    socket.once('connect', () => {
      clearTimeout(connectTimer)
      this.#metrics.upstreamConnected(socket)
      if (this.#done) return
      stream.accept()
    })
    socket.on('end', () => stream.end())
    socket.once('close', () => {
      clearTimeout(connectTimer)
      this.#metrics.upstreamClosed(socket)
      // Both halves ended cleanly, or the upstream went away: either way the relay is over.
      if (!this.#done && !stream.closed) {
        if (stream.writableEnded) this.#done = true
        else this.abort()
      }
    })
  }

  #refuse(code: string, message: string): void {
    if (this.#done || this.#stream.closed) return
    this.#metrics.upstreamConnectFailed(code)
    this.#stream.refuse({ code, message })
    this.#teardown()
  }

  /** Ends the relay now: on an upstream failure mid-relay, or on the server's request. */
  abort(): void {
    this.#stream.abort()
    this.#teardown()
  }

  #teardown(): void {
    if (this.#done) return
    this.#done = true
    // destroy(), not resetAndDestroy(): on Node 20.20 the latter left the TCP handle open for good.
    if (!this.#socket.destroyed) this.#socket.destroy()
  }
}
