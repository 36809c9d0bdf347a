import { randomBytes } from 'node:crypto'
import { TunnelError } from '../../errors/index.ts'
import { displayNameProblem, displayNameRefusal } from '../../security/display-name.ts'
import { PRODUCT_SECRET_BYTES, encodeProductCredential, formatCidr, hashProductSecret, parseCidr } from '../../protocol/index.ts'
import type { AuditRepository, LinkedProduct, LinkedProductRepository, TunnelRepository } from '../../store/index.ts'
import type { Actor } from './tunnel-service.ts'

export interface LinkedProductView {
  id: string
  tunnelId: string
  name: string
  /** whether callers must present this product's credential */
  credential: boolean
  cidrs: string[]
  createdAt: string
}

const NAME_MAX = 100
const MAX_CIDRS = 50
const MAX_PRODUCTS_PER_TUNNEL = 50
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'

/**
 * The linked products of a tunnel: the cloud callers allowed to use its application link URL, each
 * with its own credential (shown once, stored hashed) and/or the source blocks it calls from.
 */
export class LinkedProductService {
  readonly #tunnels: TunnelRepository
  readonly #products: LinkedProductRepository
  readonly #audit: AuditRepository
  readonly #changed: (tunnelId: string) => Promise<void>

  constructor(deps: { tunnels: TunnelRepository; products: LinkedProductRepository; audit: AuditRepository; changed: (tunnelId: string) => Promise<void> }) {
    this.#tunnels = deps.tunnels
    this.#products = deps.products
    this.#audit = deps.audit
    this.#changed = deps.changed
  }

  async #requireTunnel(actor: Actor, tunnelId: string): Promise<void> {
    const tunnel = await this.#tunnels.get(actor.orgId, tunnelId)
    if (tunnel === undefined) throw new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', `tunnel "${tunnelId}" not found`)
  }

  /** Adds a product; the answer carries its credential (when it has one), which is never shown again. */
  async add(actor: Actor, tunnelId: string, input: { name: unknown; credential?: unknown; cidrs?: unknown }): Promise<LinkedProductView & { credentialValue?: string }> {
    await this.#requireTunnel(actor, tunnelId)
    const name = validateName(input.name)
    const withCredential = input.credential === undefined ? true : input.credential
    if (typeof withCredential !== 'boolean') throw new TunnelError('TUN_ERR_PRODUCT_INVALID', 'credential must be true or false')
    const cidrs = validateCidrs(input.cidrs)
    if (!withCredential && cidrs.length === 0) {
      throw new TunnelError('TUN_ERR_PRODUCT_INVALID', 'a linked product without a credential needs at least one allowed CIDR block, or it would let every caller in')
    }
    const existing = await this.#products.listForTunnel(tunnelId)
    if (existing.length >= MAX_PRODUCTS_PER_TUNNEL) throw new TunnelError('TUN_ERR_PRODUCT_INVALID', `a tunnel has at most ${MAX_PRODUCTS_PER_TUNNEL} linked products`)
    const id = newProductId()
    const secret = withCredential ? randomBytes(PRODUCT_SECRET_BYTES) : undefined
    const product: LinkedProduct = {
      id,
      tunnelId,
      name,
      credentialHash: secret === undefined ? null : hashProductSecret(secret),
      cidrs,
      createdAt: new Date().toISOString(),
    }
    await this.#products.create(product)
    await this.#changed(tunnelId)
    await this.#record(actor, 'product.create', tunnelId, { productId: id, name, credential: withCredential, cidrs })
    return { ...view(product), ...(secret === undefined ? {} : { credentialValue: encodeProductCredential({ productId: id, secret }) }) }
  }

  async list(actor: Actor, tunnelId: string): Promise<LinkedProductView[]> {
    await this.#requireTunnel(actor, tunnelId)
    const products = (await this.#products.listForTunnel(tunnelId)).map(view)
    // Who looked at which tunnel's callers is part of the audit trail, like a tunnel view.
    await this.#record(actor, 'product.list', tunnelId, { count: products.length })
    return products
  }

  async remove(actor: Actor, tunnelId: string, productId: string): Promise<void> {
    await this.#requireTunnel(actor, tunnelId)
    if (!(await this.#products.delete(tunnelId, productId))) {
      throw new TunnelError('TUN_ERR_PRODUCT_NOT_FOUND', `tunnel "${tunnelId}" has no linked product "${productId}"`)
    }
    await this.#changed(tunnelId)
    await this.#record(actor, 'product.delete', tunnelId, { productId })
  }

  async #record(actor: Actor, action: string, target: string, details: Record<string, unknown>): Promise<void> {
    await this.#audit.record({ orgId: actor.orgId, actor: actor.name, action, target, sourceAddress: actor.sourceAddress, details })
  }
}

function view(p: LinkedProduct): LinkedProductView {
  return { id: p.id, tunnelId: p.tunnelId, name: p.name, credential: p.credentialHash !== null, cidrs: p.cidrs, createdAt: p.createdAt }
}

function newProductId(): string {
  const bytes = randomBytes(12)
  let id = ''
  for (const b of bytes) id += ID_ALPHABET[b % 36]!
  return id
}

function validateName(v: unknown): string {
  if (typeof v !== 'string') throw new TunnelError('TUN_ERR_PRODUCT_INVALID', 'a linked product needs a name (e.g. "Jira Cloud")')
  // Checked before trimming: a leading U+FEFF would otherwise vanish into the trim unnoticed.
  const problem = displayNameProblem(v)
  if (problem !== undefined) {
    const refusal = displayNameRefusal('the product name', problem)
    throw new TunnelError('TUN_ERR_PRODUCT_INVALID', refusal.message, { details: refusal.details })
  }
  const name = v.trim()
  if (name === '') throw new TunnelError('TUN_ERR_PRODUCT_INVALID', 'a linked product needs a name (e.g. "Jira Cloud")')
  if (name.length > NAME_MAX) throw new TunnelError('TUN_ERR_PRODUCT_INVALID', `the product name must be at most ${NAME_MAX} characters`)
  return name
}

function validateCidrs(v: unknown): string[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v) || v.some((c) => typeof c !== 'string')) throw new TunnelError('TUN_ERR_PRODUCT_INVALID', 'cidrs must be a list of CIDR blocks such as "10.0.0.0/8"')
  if (v.length > MAX_CIDRS) throw new TunnelError('TUN_ERR_PRODUCT_INVALID', `at most ${MAX_CIDRS} CIDR blocks per product`)
  return [...new Set((v as string[]).map((c) => {
    try {
      return formatCidr(parseCidr(c))
    } catch (err) {
      throw new TunnelError('TUN_ERR_PRODUCT_INVALID', (err as Error).message)
    }
  }))]
}
