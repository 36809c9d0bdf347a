import type { IncomingMessage, ServerResponse } from 'node:http'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import type { AuditRepository } from '../../store/index.ts'
import type { ApiTokenService } from './api-token-service.ts'
import { readJsonObject } from '../../web/json-http.ts'
import type { Actor, TunnelService } from '../tunnels/tunnel-service.ts'
import type { LinkedProductService } from '../tunnels/linked-product-service.ts'
import type { TunnelActivity } from '../tunnels/tunnel-activity.ts'

const TUNNEL_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})$/
const ACTIVITY_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})\/activity$/
const PRODUCTS_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})\/products$/
const PRODUCT_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})\/products\/([a-z0-9]{1,64})$/
const TOKEN_PATH = /^\/api\/v1\/tokens\/([A-Za-z0-9-]{1,64})$/
const AUDIT_LIMIT_MAX = 1000

export interface AdminApiDeps {
  tunnels: TunnelService
  products: LinkedProductService
  tokens: ApiTokenService
  audit: AuditRepository
  /** per-tunnel activity of the last hour, on this server */
  activity?: TunnelActivity
  log: Logger
  /** the console's signed-in user, for requests without Authorization (cookie + CSRF token) */
  consoleActor?: (req: IncomingMessage) => Promise<Actor | undefined>
}

/**
 * The JSON admin API (CLI and consoles use the same routes). Every answer is JSON; errors carry a
 * stable code and one human line.
 *
 *   GET    /api/v1/tunnels          list
 *   POST   /api/v1/tunnels          create {name, instanceUrl?} → includes the key, shown once
 *   GET    /api/v1/tunnels/:id      show
 *   DELETE /api/v1/tunnels/:id      delete (revokes the key at once)
 *   GET    /api/v1/tunnels/:id/activity        the last hour on this server: per minute, and the last events
 *   GET    /api/v1/tunnels/:id/products        linked products
 *   POST   /api/v1/tunnels/:id/products        add {name, credential?: bool (true), cidrs?: [..]} → credential shown once
 *   DELETE /api/v1/tunnels/:id/products/:pid   remove
 *   GET    /api/v1/tokens           API tokens (never their values)
 *   POST   /api/v1/tokens           create {name} → includes the token, shown once
 *   DELETE /api/v1/tokens/:id       revoke (not the organization's last one)
 *   GET    /api/v1/audit?limit=N    audit events, newest first (default 100, at most 1000)
 */
export class AdminApi {
  readonly #deps: AdminApiDeps
  readonly #log: Logger

  constructor(deps: AdminApiDeps) {
    this.#deps = deps
    this.#log = deps.log.child({ component: 'admin-api' })
  }

  static matches(url: string | undefined): boolean {
    return (url ?? '').startsWith('/api/')
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#route(req, res).catch((err: unknown) => {
      const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', undefined, { cause: err })
      if (e.httpStatus >= 500) this.#log.error({ err }, 'admin api failed')
      send(res, e.httpStatus, e.toJSON())
    })
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [path = '/', query = ''] = (req.url ?? '/').split('?', 2)
    const viaConsole = req.headers.authorization === undefined ? await this.#deps.consoleActor?.(req) : undefined
    const actor = viaConsole ?? (await this.#deps.tokens.authenticate(req.headers.authorization, req.socket.remoteAddress ?? 'unknown'))
    if (path === '/api/v1/tunnels') {
      if (req.method === 'GET') {
        send(res, 200, { tunnels: await this.#deps.tunnels.list(actor) })
        return
      }
      if (req.method === 'POST') {
        const body = await readJsonObject(req)
        const created = await this.#deps.tunnels.create(actor, { name: body.name, instanceUrl: body.instanceUrl })
        send(res, 201, created)
        return
      }
      throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
    }
    const m = TUNNEL_PATH.exec(path)
    if (m !== null) {
      const id = m[1]!
      if (req.method === 'GET') {
        send(res, 200, await this.#deps.tunnels.get(actor, id))
        return
      }
      if (req.method === 'DELETE') {
        await this.#deps.tunnels.delete(actor, id)
        res.writeHead(204).end()
        return
      }
      throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
    }
    const activity = ACTIVITY_PATH.exec(path)
    if (activity !== null && this.#deps.activity !== undefined) {
      if (req.method !== 'GET') throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
      await this.#deps.tunnels.mustOwn(actor, activity[1]!)
      send(res, 200, this.#deps.activity.view(activity[1]!))
      return
    }
    const products = PRODUCTS_PATH.exec(path)
    if (products !== null) {
      const tunnelId = products[1]!
      if (req.method === 'GET') {
        send(res, 200, { products: await this.#deps.products.list(actor, tunnelId) })
        return
      }
      if (req.method === 'POST') {
        const body = await readJsonObject(req)
        const { credentialValue, ...created } = await this.#deps.products.add(actor, tunnelId, { name: body.name, credential: body.credential, cidrs: body.cidrs })
        send(res, 201, { ...created, ...(credentialValue === undefined ? {} : { credentialValue }) })
        return
      }
      throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
    }
    const product = PRODUCT_PATH.exec(path)
    if (product !== null) {
      if (req.method === 'DELETE') {
        await this.#deps.products.remove(actor, product[1]!, product[2]!)
        res.writeHead(204).end()
        return
      }
      throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
    }
    if (path === '/api/v1/tokens') {
      if (req.method === 'GET') {
        send(res, 200, { tokens: await this.#deps.tokens.list(actor) })
        return
      }
      if (req.method === 'POST') {
        const body = await readJsonObject(req)
        send(res, 201, await this.#deps.tokens.create(actor, { name: body.name }))
        return
      }
      throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
    }
    const token = TOKEN_PATH.exec(path)
    if (token !== null) {
      if (req.method === 'DELETE') {
        await this.#deps.tokens.revoke(actor, token[1]!)
        res.writeHead(204).end()
        return
      }
      throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
    }
    if (path === '/api/v1/audit') {
      if (req.method !== 'GET') throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`)
      send(res, 200, { events: await this.#deps.audit.list(actor.orgId, { limit: auditLimit(query) }) })
      return
    }
    throw new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `no API route ${req.method} ${path}`)
  }
}

function auditLimit(query: string): number {
  const raw = new URLSearchParams(query).get('limit')
  if (raw === null) return 100
  const n = Number(raw)
  if (!/^\d{1,7}$/.test(raw) || n < 1 || n > AUDIT_LIMIT_MAX) {
    throw new TunnelError('TUN_ERR_API_BAD_REQUEST', `limit must be a whole number from 1 to ${AUDIT_LIMIT_MAX} (got "${raw}")`)
  }
  return n
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const json = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
  })
  res.end(json)
}
