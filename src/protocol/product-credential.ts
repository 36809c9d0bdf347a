import { createHash } from 'node:crypto'
import { TunnelError } from '../errors/index.ts'

/**
 * A linked product's credential: `atp1_<product id>_<secret>`, the secret 32 random bytes in
 * base64url. The id lets the ingress find the one hash to compare in constant time; only the hash
 * of the secret is stored. Callers present it in the X-Apptunnel-Credential request field, which
 * the ingress removes before the request goes on (the caller's own Authorization is the app's).
 */
export const PRODUCT_CREDENTIAL_PREFIX = 'atp1_'
export const PRODUCT_CREDENTIAL_HEADER = 'x-apptunnel-credential'
export const PRODUCT_SECRET_BYTES = 32
const PRODUCT_ID = /^[a-z0-9]{12}$/
const CREDENTIAL = /^atp1_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/

export interface ProductCredential {
  productId: string
  secret: Buffer
}

export function isValidProductId(id: string): boolean {
  return PRODUCT_ID.test(id)
}

export function encodeProductCredential(c: ProductCredential): string {
  if (!isValidProductId(c.productId)) throw new TunnelError('TUN_ERR_INTERNAL', 'product id must be 12 characters of a-z 0-9')
  if (c.secret.length !== PRODUCT_SECRET_BYTES) throw new TunnelError('TUN_ERR_INTERNAL', `product secret must be ${PRODUCT_SECRET_BYTES} bytes`)
  return `${PRODUCT_CREDENTIAL_PREFIX}${c.productId}_${c.secret.toString('base64url')}`
}

/** Parses a presented credential; undefined for anything that is not one (the caller then simply has none). */
export function parseProductCredential(text: string): ProductCredential | undefined {
  const m = CREDENTIAL.exec(text.trim())
  if (m === null) return undefined
  const secret = Buffer.from(m[2]!, 'base64url')
  if (secret.length !== PRODUCT_SECRET_BYTES) return undefined
  return { productId: m[1]!, secret }
}

/** The only form of a product secret the server keeps. */
export function hashProductSecret(secret: Buffer): string {
  return createHash('sha256').update(secret).digest('hex')
}
