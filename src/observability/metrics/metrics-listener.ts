import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../logger.ts'

/** One condition /readyz checks. */
export interface ReadinessCheck {
  /** named in the /readyz body, e.g. "database" */
  readonly name: string
  /** returns when the condition holds; throws (or rejects) with the reason when it does not */
  check(): void | Promise<void>
}

export interface MetricsListenerDeps {
  /** the whole exposition text */
  render(): Promise<string>
  contentType: string
  checks: readonly ReadinessCheck[]
  log: Logger
}

export interface MetricsListenerOptions {
  /** a readiness check that has not answered within this time fails; [checkTimeoutMs=2000] */
  checkTimeoutMs?: number
  /** a request head must arrive within this time of the connection or the last request; [headTimeoutMs=10000] */
  headTimeoutMs?: number
  /** a whole request, body included, must arrive within this time; [requestTimeoutMs=15000] */
  requestTimeoutMs?: number
}

export interface CheckResult {
  name: string
  ok: boolean
  reason?: string
}

const JSON_TYPE = 'application/json; charset=utf-8'
const ROUTES = new Set(['/metrics', '/healthz', '/readyz'])

/**
 * The plain-HTTP operations endpoint of a server or an agent (`--metrics-listen HOST:PORT`):
 *   GET /metrics  the Prometheus text exposition
 *   GET /healthz  200 while the process runs
 *   GET /readyz   200 when every readiness check passes, else 503; the JSON body lists each check
 * HEAD works on each; other methods get 405, other paths 404, both with a TunnelError body.
 * Nothing here is authenticated: bind it to a private address.
 */
export class MetricsListener {
  readonly #server: Server
  readonly #deps: MetricsListenerDeps
  readonly #checkTimeoutMs: number
  #address: { host: string; port: number } = { host: '', port: 0 }
  #closing: Promise<void> | undefined

  private constructor(deps: MetricsListenerDeps, options: MetricsListenerOptions) {
    this.#deps = deps
    this.#checkTimeoutMs = options.checkTimeoutMs ?? 2_000
    const headTimeoutMs = options.headTimeoutMs ?? 10_000
    // Scrapes are small and quick: a client that dawdles over its request or holds a connection
    // idle is cut off. Node refuses a head timeout above the request timeout, and checks both only
    // every connectionsCheckingInterval (30 s by default, which would let a dripped head live on).
    const timeouts = {
      headersTimeout: headTimeoutMs,
      requestTimeout: Math.max(options.requestTimeoutMs ?? 15_000, headTimeoutMs),
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: Math.min(1_000, headTimeoutMs),
    }
    this.#server = createServer(timeouts, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        deps.log.error({ err }, 'metrics endpoint failed')
        if (!res.headersSent) this.#sendError(res, new TunnelError('TUN_ERR_INTERNAL'))
        else res.destroy()
      })
    })
    this.#server.on('clientError', (_err, socket) => socket.destroy())
  }

  /** Listens on host:port (port 0: any free port; see `address`). */
  static async start(listen: { host: string; port: number }, deps: MetricsListenerDeps, options: MetricsListenerOptions = {}): Promise<MetricsListener> {
    const listener = new MetricsListener(deps, options)
    await new Promise<void>((resolve, reject) => {
      listener.#server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new TunnelError('TUN_ERR_CONFIG_INVALID', `metricsListen: cannot listen on ${listen.host}:${listen.port} (${err.code ?? err.message})`, { cause: err }))
      })
      // exclusive: each `--workers` worker reports its own metrics, so it binds its own listener
      // rather than share one through the supervisor. Alone, no effect.
      listener.#server.listen({ port: listen.port, host: listen.host, exclusive: true }, () => resolve())
    })
    const a = listener.#server.address()
    if (a !== null && typeof a !== 'string') listener.#address = { host: a.address, port: a.port }
    return listener
  }

  get address(): { host: string; port: number } {
    return this.#address
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!
    if (!ROUTES.has(path)) {
      this.#sendError(res, new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `nothing at ${path}: try /metrics, /healthz or /readyz`))
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      this.#sendError(res, new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method ?? ''} ${path}: only GET and HEAD`))
      return
    }
    if (path === '/metrics') {
      const text = await this.#deps.render()
      res.writeHead(200, { 'content-type': this.#deps.contentType, 'cache-control': 'no-store' }).end(text)
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': JSON_TYPE, 'cache-control': 'no-store' }).end('{"status":"ok"}')
    } else {
      const checks = await this.runChecks()
      const ready = checks.every((c) => c.ok)
      res.writeHead(ready ? 200 : 503, { 'content-type': JSON_TYPE, 'cache-control': 'no-store' }).end(JSON.stringify({ status: ready ? 'ready' : 'not ready', checks }))
    }
  }

  /** Runs every readiness check at once, each bounded by checkTimeoutMs. */
  runChecks(): Promise<CheckResult[]> {
    return Promise.all(this.#deps.checks.map((c) => this.#run(c)))
  }

  async #run(c: ReadinessCheck): Promise<CheckResult> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#checkTimeoutMs} ms`)), this.#checkTimeoutMs)
    })
    try {
      await Promise.race([Promise.resolve().then(() => c.check()), timeout])
      return { name: c.name, ok: true }
    } catch (err) {
      return { name: c.name, ok: false, reason: err instanceof Error ? err.message : String(err) }
    } finally {
      clearTimeout(timer)
    }
  }

  #sendError(res: ServerResponse, e: TunnelError): void {
    res.writeHead(e.httpStatus, { 'content-type': JSON_TYPE }).end(JSON.stringify(e.toJSON()))
  }

  /** Stops listening and closes every connection, idle or not; idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
    return this.#closing
  }
}
