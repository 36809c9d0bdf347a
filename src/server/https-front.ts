import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { TunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import { tlsPolicy } from '../transport/tls-policy.ts'

/** Something served on the HTTPS listener: the admin API, the cloud console. */
export interface HttpsRoute {
  matches(url: string | undefined): boolean
  handle(req: IncomingMessage, res: ServerResponse): void
}

/** What takes the listener's upgrades: the agent gateway. */
export interface UpgradeRoute {
  matches(req: IncomingMessage): boolean
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
}

export interface HttpsFrontOptions {
  cert: string
  key: string
  /** a TLS handshake must finish within this time */
  handshakeTimeoutMs: number
  /** a request head must arrive within this time */
  headTimeoutMs: number
  /** a whole request must arrive within this time */
  requestTimeoutMs: number
}

/**
 * The server's HTTPS listener: routes each request to the first route that matches (the admin
 * API, the cloud console), answers `/healthz` itself and 404 with a code for anything else, and
 * hands agent upgrades to the gateway. Closing it drops every connection, kept-alive ones too.
 */
export class HttpsFront {
  readonly #server: HttpsServer
  readonly #sockets = new Set<Socket>()

  constructor(options: HttpsFrontOptions, deps: { routes: readonly HttpsRoute[]; upgrade: UpgradeRoute; log: Logger }) {
    this.#server = createHttpsServer(
      {
        cert: options.cert,
        key: options.key,
        ...tlsPolicy,
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: options.handshakeTimeoutMs,
        headersTimeout: options.headTimeoutMs,
        requestTimeout: Math.max(options.requestTimeoutMs, options.headTimeoutMs),
        keepAliveTimeout: 5_000,
        // Node checks the two timeouts above only this often (30 s by default), which would let a
        // dripped head live up to 30 s past its limit.
        connectionsCheckingInterval: Math.min(1_000, options.headTimeoutMs),
      },
      (req, res) => {
        const route = deps.routes.find((r) => r.matches(req.url))
        if (route !== undefined) route.handle(req, res)
        else if (req.url === '/healthz') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}')
        } else {
          const e = new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `nothing at ${req.url ?? '/'}`)
          res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(e.toJSON()))
        }
      },
    )
    this.#server.on('connection', (s: Socket) => {
      s.setNoDelay(true)
      this.#sockets.add(s)
      s.once('close', () => this.#sockets.delete(s))
    })
    this.#server.on('tlsClientError', (err, socket) => {
      deps.log.debug({ err: err.message, remoteAddress: socket.remoteAddress }, 'tls handshake failed')
    })
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (deps.upgrade.matches(req)) deps.upgrade.handleUpgrade(req, socket, head)
      else socket.destroy()
    })
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      // exclusive: under `--workers` each worker has its own agent endpoint (advertised to agents),
      // bound by the worker itself rather than shared through the supervisor. Alone, no effect.
      this.#server.listen({ port, host, exclusive: true }, () => {
        this.#server.removeListener('error', reject)
        const a = this.#server.address()
        if (a === null || typeof a === 'string') reject(new Error('no address'))
        else resolve({ host: a.address, port: a.port })
      })
    })
  }

  /** True while the listener accepts connections (readiness). */
  get listening(): boolean {
    return this.#server.listening
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      for (const s of this.#sockets) s.destroy()
    })
  }
}
