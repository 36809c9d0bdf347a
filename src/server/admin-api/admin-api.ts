import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import type { ApiTokenRepository } from '../../store/index.ts'
import type { Actor, TunnelService } from '../tunnels/tunnel-service.ts'
import type { LinkedProductService } from '../tunnels/linked-product-service.ts'

const MAX_BODY_BYTES = 64 * 1024
const TUNNEL_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})$/
const PRODUCTS_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})\/products$/
const PRODUCT_PATH = /^\/api\/v1\/tunnels\/([a-z0-9]{1,64})\/products\/([a-z0-9]{1,64})$/

export interface AdminApiDeps {
  tunnels: TunnelService
  products: LinkedProductService
  tokens: ApiTokenRepository
  log: Logger
}

export function hashApiToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/**
 * The JSON admin API (CLI and consoles use the same routes). Every answer is JSON; errors carry a
 * stable code and one human line.
 *
 *   GET    /api/v1/tunnels          list
 *   POST   /api/v1/tunnels          create {name, instanceUrl?} → includes the key, shown once
 *   GET    /api/v1/tunnels/:id      show
 *   DELETE /api/v1/tunnels/:id      delete (revokes the key at once)
 *   GET    /api/v1/tunnels/:id/products        linked products
 *   POST   /api/v1/tunnels/:id/products        add {name, credential?: bool (true), cidrs?: [..]} → credential shown once
 *   DELETE /api/v1/tunnels/:id/products/:pid   remove
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
    const path = (req.url ?? '/').split('?')[0]!
    const actor = await this.#authenticate(req)
    if (path === '/api/v1/tunnels') {
      if (req.method === 'GET') {
        send(res, 200, { tunnels: await this.#deps.tunnels.list(actor) })
        return
      }
      if (req.method === 'POST') {
        const body = await readJson(req)
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
    const products = PRODUCTS_PATH.exec(path)
    if (products !== null) {
      const tunnelId = products[1]!
      if (req.method === 'GET') {
        send(res, 200, { products: await this.#deps.products.list(actor, tunnelId) })
        return
      }
      if (req.method === 'POST') {
        const body = await readJson(req)
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
    throw new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `no API route ${req.method} ${path}`)
  }

  async #authenticate(req: IncomingMessage): Promise<Actor> {
    const header = req.headers.authorization
    if (header === undefined) throw new TunnelError('TUN_ERR_AUTH_TOKEN_MISSING')
    const m = /^Bearer\s+(\S+)$/.exec(header)
    if (m === null) throw new TunnelError('TUN_ERR_AUTH_TOKEN_INVALID', 'Authorization must be "Bearer <token>"')
    const identity = await this.#deps.tokens.findByHash(hashApiToken(m[1]!))
    if (identity === undefined) throw new TunnelError('TUN_ERR_AUTH_TOKEN_INVALID')
    return { orgId: identity.orgId, name: `token:${identity.name}`, sourceAddress: req.socket.remoteAddress ?? 'unknown' }
  }
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

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? ''
  if (!type.startsWith('application/json')) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'Content-Type must be application/json')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new TunnelError('TUN_ERR_API_BODY_TOO_LARGE', `request body is larger than ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'request body is not valid JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'request body must be a JSON object')
  }
  return parsed as Record<string, unknown>
}
