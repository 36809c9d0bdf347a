import type { IncomingMessage, ServerResponse } from 'node:http'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { ConsoleUserRepository, type Database } from '../../store/index.ts'
import { ensureBootstrapAdmin } from '../../web/bootstrap-admin.ts'
import { ConsoleAssets } from '../../web/console-assets.ts'
import { ConsoleAuth } from '../../web/console-auth.ts'
import type { ConsoleSessionOptions } from '../../web/console-sessions.ts'
import { pathOf, sendError } from '../../web/json-http.ts'
import type { LoginLimiterOptions } from '../../web/login-limiter.ts'
import type { ScryptParams } from '../../web/password-hash.ts'
import type { Actor } from '../tunnels/tunnel-service.ts'

export const CLOUD_CONSOLE_PATH = '/console'
const SESSION_PATH = `${CLOUD_CONSOLE_PATH}/api/session`
const PAGE = /^\/console(?:\/|\/login|\/tunnels|\/tunnels\/new|\/tunnels\/[a-z0-9]{1,64}|\/audit|\/tokens|\/account)?$/

export interface CloudConsoleOptions {
  dataDir: string
  orgId: string
  orgName: string
  maxTunnelsPerOrg: number
  session?: Partial<ConsoleSessionOptions>
  limiter?: LoginLimiterOptions
  /** scrypt cost of the bootstrap admin's hash (tests lower it) */
  passwordParams?: ScryptParams
}

/**
 * The cloud admin console, served by `apptunnel server` on its HTTPS port under /console: static
 * pages whose script calls the admin API (/api/v1/…) with the session cookie and CSRF token, the
 * same routes the CLI calls with a bearer token. `actor()` is how the admin API accepts the cookie.
 */
export class CloudConsole {
  readonly #auth: ConsoleAuth
  readonly #assets: ConsoleAssets
  readonly #options: CloudConsoleOptions
  readonly #log: Logger

  private constructor(options: CloudConsoleOptions, deps: { database: Database; log: Logger }) {
    this.#options = options
    this.#log = deps.log.child({ component: 'cloud-console' })
    this.#auth = new ConsoleAuth(
      { sessionPath: SESSION_PATH, cookieName: '__Host-apptunnel-console', ...(options.session === undefined ? {} : { session: options.session }), ...(options.limiter === undefined ? {} : { limiter: options.limiter }) },
      {
        database: deps.database,
        auditOrgId: options.orgId,
        log: deps.log,
        describe: () => ({ org: { name: options.orgName }, limits: { maxTunnels: options.maxTunnelsPerOrg } }),
      },
    )
    this.#assets = new ConsoleAssets(
      {
        '/console/assets/console.css': 'src/web/assets/console.css',
        '/console/assets/console-kit.js': 'src/web/assets/console-kit.js',
        '/console/assets/cloud-console.js': 'src/server/console/assets/cloud-console.js',
        '/console/assets/cloud-activity.js': 'src/server/console/assets/cloud-activity.js',
      },
      'src/server/console/assets/cloud.html',
    )
  }

  /** Loads the pages and, on the first start, creates the bootstrap admin (password file logged). */
  static async start(options: CloudConsoleOptions, deps: { database: Database; log: Logger }): Promise<CloudConsole> {
    const cloud = new CloudConsole(options, deps)
    const created = await ensureBootstrapAdmin(new ConsoleUserRepository(deps.database), {
      orgId: options.orgId,
      dataDir: options.dataDir,
      ...(options.passwordParams === undefined ? {} : { params: options.passwordParams }),
    })
    if (created !== undefined) cloud.#log.info({ file: created.file, username: 'admin' }, 'created the console admin; its password is in the file')
    return cloud
  }

  static matches(url: string | undefined): boolean {
    const path = (url ?? '/').split('?')[0]!
    return path === '/' || path === CLOUD_CONSOLE_PATH || path.startsWith(`${CLOUD_CONSOLE_PATH}/`)
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = pathOf(req)
    try {
      if (this.#auth.matches(path)) return this.#auth.handle(req, res)
      const read = req.method === 'GET' || req.method === 'HEAD'
      if (read && path === '/') {
        res.writeHead(302, { location: `${CLOUD_CONSOLE_PATH}/` }).end()
        return
      }
      if (read && this.#assets.serveFile(req, res, path)) return
      if (read && PAGE.test(path)) return this.#assets.serveShell(req, res)
      if (ConsoleAssets.wantsPage(req) && path.startsWith(`${CLOUD_CONSOLE_PATH}/`) && !path.startsWith(`${CLOUD_CONSOLE_PATH}/api/`) && !path.startsWith(`${CLOUD_CONSOLE_PATH}/assets/`)) {
        return this.#assets.serveShell(req, res, 404)
      }
      throw new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `nothing at ${req.method} ${path}`)
    } catch (err) {
      sendError(res, err, this.#log)
    }
  }

  /**
   * The admin API's actor for a request carrying a console session cookie; undefined without one.
   * A state-changing request must also carry the session's CSRF token from the console's origin.
   */
  async actor(req: IncomingMessage): Promise<Actor | undefined> {
    const who = await this.#auth.identify(req)
    if (who === undefined) return undefined
    return { orgId: who.orgId ?? this.#options.orgId, name: `console:${who.username}`, sourceAddress: who.sourceAddress }
  }
}
