import { timingSafeEqual } from 'node:crypto'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { AddressMatcher, hashProductSecret, parseCidr, parseProductCredential, PRODUCT_CREDENTIAL_HEADER } from '../../protocol/index.ts'
import type { LinkedProduct, LinkedProductRepository } from '../../store/index.ts'

interface ProductRule {
  id: string
  credentialHash: Buffer | null
  sources: AddressMatcher | null
}

/**
 * Who may call each tunnel, held in memory so the ingress decides per request without a query.
 * A tunnel without linked products is open to whoever reaches the (private) ingress; once it has
 * one, a caller must match a product: its credential (when it has one) and one of its source
 * blocks (when it has some).
 *
 * Changes made on this replica apply at once (reloadTunnel); the full reload every refreshMs
 * catches changes made through other replicas sharing the database.
 */
export class AccessPolicies {
  readonly #products: LinkedProductRepository
  readonly #log: Logger
  readonly #refreshMs: number
  #byTunnel = new Map<string, ProductRule[]>()
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(products: LinkedProductRepository, options: { refreshMs: number; log: Logger }) {
    this.#products = products
    this.#refreshMs = options.refreshMs
    this.#log = options.log.child({ component: 'access' })
  }

  async start(): Promise<void> {
    await this.#reloadAll()
    this.#schedule()
  }

  #schedule(): void {
    if (this.#closed) return
    this.#timer = setTimeout(() => {
      this.#reloadAll()
        .catch((err: unknown) => this.#log.warn({ err }, 'cannot reload the linked products; keeping the last ones'))
        .finally(() => this.#schedule())
    }, this.#refreshMs)
  }

  async #reloadAll(): Promise<void> {
    const all = await this.#products.listAll()
    const next = new Map<string, ProductRule[]>()
    for (const p of all) {
      let rules = next.get(p.tunnelId)
      if (rules === undefined) next.set(p.tunnelId, (rules = []))
      rules.push(this.#rule(p))
    }
    this.#byTunnel = next
  }

  /** Re-reads one tunnel's products now (after a change on this replica). */
  async reloadTunnel(tunnelId: string): Promise<void> {
    const products = await this.#products.listForTunnel(tunnelId)
    if (products.length === 0) this.#byTunnel.delete(tunnelId)
    else this.#byTunnel.set(tunnelId, products.map((p) => this.#rule(p)))
  }

  #rule(p: LinkedProduct): ProductRule {
    let sources: AddressMatcher | null = null
    if (p.cidrs.length > 0) {
      try {
        sources = new AddressMatcher(p.cidrs.map(parseCidr))
      } catch (err) {
        // A block that does not parse (a row edited by hand) must not widen access: the product then matches no source.
        this.#log.error({ err, productId: p.id }, 'linked product has an invalid CIDR block; it matches no caller')
        sources = new AddressMatcher([])
      }
    }
    return { id: p.id, credentialHash: p.credentialHash === null ? null : Buffer.from(p.credentialHash, 'hex'), sources }
  }

  /** True when the tunnel has linked products, i.e. callers are checked at all. */
  restricts(tunnelId: string): boolean {
    return this.#byTunnel.has(tunnelId)
  }

  /**
   * Throws 403 TUN_ERR_INGRESS_FORBIDDEN unless the caller matches one of the tunnel's products.
   * `headers` are the request's fields as received; only X-Apptunnel-Credential is read.
   */
  check(tunnelId: string, sourceAddress: string, headers: ReadonlyArray<readonly [string, string]>): void {
    const rules = this.#byTunnel.get(tunnelId)
    if (rules === undefined) return
    let presented: string | undefined
    let count = 0
    for (const [name, value] of headers) {
      if (name.length === PRODUCT_CREDENTIAL_HEADER.length && name.toLowerCase() === PRODUCT_CREDENTIAL_HEADER) {
        presented = value
        count++
      }
    }
    const credential = count === 1 && presented !== undefined ? parseProductCredential(presented) : undefined
    const hash = credential === undefined ? undefined : Buffer.from(hashProductSecret(credential.secret), 'hex')
    for (const rule of rules) {
      const sourceOk = rule.sources === null || rule.sources.matches(sourceAddress)
      if (!sourceOk) continue
      if (rule.credentialHash === null) return
      if (credential !== undefined && credential.productId === rule.id && timingSafeEqual(hash!, rule.credentialHash)) return
    }
    throw new TunnelError(
      'TUN_ERR_INGRESS_FORBIDDEN',
      count === 0
        ? `this caller is not a linked product of the tunnel: send a linked product's credential in X-Apptunnel-Credential, from an allowed address (this one is ${sourceAddress})`
        : `the X-Apptunnel-Credential is not valid for this tunnel from ${sourceAddress}`,
    )
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
  }
}
