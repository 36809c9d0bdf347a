import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { urlHost, type ListenAddress } from '../../config/listen-address.ts'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { AuditRepository, ClusterNodeRepository, ConsoleUserRepository, type Database } from '../../store/index.ts'
import { loadOrCreateCertificate } from '../../transport/self-signed-certificate.ts'
import { tlsPolicy } from '../../transport/tls-policy.ts'
import { ensureBootstrapAdmin } from '../../web/bootstrap-admin.ts'
import { ConsoleAssets } from '../../web/console-assets.ts'
import { ConsoleAuth } from '../../web/console-auth.ts'
import type { ConsoleSessionOptions } from '../../web/console-sessions.ts'
import { pathOf, sendError } from '../../web/json-http.ts'
import type { LoginLimiterOptions } from '../../web/login-limiter.ts'
import type { ScryptParams } from '../../web/password-hash.ts'
import type { InstanceAdmin } from '../instance/instance-admin.ts'
import { INSTANCE_AUDIT_ORG, InstanceApi } from './instance-api.ts'

export interface OnpremConsoleOptions {
  listen: ListenAddress
  /** the node's data directory: the generated certificate (console/) and the bootstrap password file */
  dataDir: string
  tlsCertFile?: string | undefined
  tlsKeyFile?: string | undefined
  session?: Partial<ConsoleSessionOptions>
  /** slow clients (slowloris): [tlsHandshakeTimeoutMs=10000], [headTimeoutMs=20000], [requestTimeoutMs=60000] */
  timeouts?: { tlsHandshakeTimeoutMs: number; headTimeoutMs: number; requestTimeoutMs: number }
  limiter?: LoginLimiterOptions
  /** scrypt cost of the bootstrap admin's hash (tests lower it) */
  passwordParams?: ScryptParams
}

export interface OnpremConsole {
  /** https://host:port/ as a browser on this host reaches it */
  readonly url: string
  readonly address: { host: string; port: number }
  readonly certificatePem: string
  close(): Promise<void>
}

const PAGE = /^\/(?:login|add-key|nodes|account|audit)?$/

/** A database as a page may show it: a URL's password is replaced (the page is for the admin, but it is copied around). */
export function shownDatabase(database: string): string {
  if (!/^postgres(?:ql)?:\/\//.test(database)) return database
  try {
    const u = new URL(database)
    if (u.password !== '') u.password = '****'
    return u.toString()
  } catch {
    return 'postgres://…'
  }
}

/**
 * The on-prem admin console of one agent node: HTTPS on its own private port (a self-signed
 * certificate kept in the data directory unless one is given), signing in against the instance
 * database, so the console of any node shows and changes the same instance.
 */
/** The node serving the console: marked in the nodes view, and the model of the commands it shows. */
export interface ConsoleNodeFacts {
  id: string
  upstream: string
  /** the instance database as given (a postgres:// URL's password is never shown) */
  database: string
}

export async function startOnpremConsole(options: OnpremConsoleOptions, deps: { database: Database; admin: InstanceAdmin; log: Logger; node?: ConsoleNodeFacts }): Promise<OnpremConsole> {
  const log = deps.log.child({ component: 'onprem-console' })
  const cert = await loadOrCreateCertificate(
    join(options.dataDir, 'console'),
    { certPath: options.tlsCertFile, keyPath: options.tlsKeyFile },
    [options.listen.host, hostname()].filter((h) => h !== '0.0.0.0' && h !== '::'),
  )
  const created = await ensureBootstrapAdmin(new ConsoleUserRepository(deps.database), {
    orgId: null,
    dataDir: options.dataDir,
    ...(options.passwordParams === undefined ? {} : { params: options.passwordParams }),
  })
  if (created !== undefined) log.info({ file: created.file, username: 'admin' }, 'created the instance console admin; its password is in the file')

  const auth = new ConsoleAuth(
    { sessionPath: '/api/v1/session', cookieName: '__Host-apptunnel-instance-console', ...(options.session === undefined ? {} : { session: options.session }), ...(options.limiter === undefined ? {} : { limiter: options.limiter }) },
    {
      database: deps.database,
      auditOrgId: INSTANCE_AUDIT_ORG,
      log: deps.log,
      ...(deps.node === undefined ? {} : { describe: () => ({ node: { id: deps.node!.id, upstream: deps.node!.upstream, database: shownDatabase(deps.node!.database) } }) }),
    },
  )
  const api = new InstanceApi({ admin: deps.admin, audit: new AuditRepository(deps.database), busNodes: new ClusterNodeRepository(deps.database), log })
  const assets = new ConsoleAssets(
    {
      '/assets/console.css': 'src/web/assets/console.css',
      '/assets/console-kit.js': 'src/web/assets/console-kit.js',
      '/assets/onprem-console.js': 'src/agent/console/assets/onprem-console.js',
    },
    'src/agent/console/assets/onprem.html',
  )

  const timeouts = options.timeouts ?? { tlsHandshakeTimeoutMs: 10_000, headTimeoutMs: 20_000, requestTimeoutMs: 60_000 }
  const server = createHttpsServer(
    {
      cert: cert.cert,
      key: cert.key,
      ...tlsPolicy,
      ALPNProtocols: ['http/1.1'],
      // Slow clients (slowloris) on a LAN-reachable port: the same defaults as the server's HTTPS
      // listener. Node refuses a head timeout above the request timeout, and checks both only every
      // connectionsCheckingInterval (30 s by default, which would let a dripped head live on).
      handshakeTimeout: timeouts.tlsHandshakeTimeoutMs,
      headersTimeout: timeouts.headTimeoutMs,
      requestTimeout: Math.max(timeouts.requestTimeoutMs, timeouts.headTimeoutMs),
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: Math.min(1_000, timeouts.headTimeoutMs),
    },
    (req, res) => {
      const path = pathOf(req)
      const read = req.method === 'GET' || req.method === 'HEAD'
      void (async () => {
        if (auth.matches(path)) return auth.handle(req, res)
        if (InstanceApi.matches(path)) return api.handle(req, res, path, await auth.require(req))
        if (read && assets.serveFile(req, res, path)) return
        if (read && PAGE.test(path)) return assets.serveShell(req, res)
        if (ConsoleAssets.wantsPage(req) && !path.startsWith('/api/') && !path.startsWith('/assets/')) return assets.serveShell(req, res, 404)
        throw new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `nothing at ${req.method} ${path}`)
      })().catch((err: unknown) => sendError(res, err, log))
    },
  )
  const sockets = new Set<Socket>()
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  server.on('tlsClientError', (err, socket) => log.debug({ err: err.message, remoteAddress: socket.remoteAddress }, 'console tls handshake failed'))
  const address = await new Promise<{ host: string; port: number }>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new TunnelError('TUN_ERR_CONFIG_INVALID', `consoleListen: cannot listen on ${options.listen.host}:${options.listen.port}: ${err.code ?? err.message}`, { cause: err })),
    )
    server.listen(options.listen.port, options.listen.host, () => {
      const a = server.address()
      if (a === null || typeof a === 'string') reject(new Error('no address'))
      else resolve({ host: a.address, port: a.port })
    })
  })
  const url = `https://${urlHost(address.host)}:${address.port}/`
  log.info({ url }, 'instance console listening')
  let closing: Promise<void> | undefined
  return {
    url,
    address,
    certificatePem: cert.cert,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      })),
  }
}
