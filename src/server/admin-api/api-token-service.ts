import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { TunnelError } from '../../errors/index.ts'
import { displayNameProblem, displayNameRefusal } from '../../security/display-name.ts'
import type { Logger } from '../../observability/index.ts'
import type { ApiToken, ApiTokenIdentity, ApiTokenRepository, AuditRepository } from '../../store/index.ts'
import { AuthFailureLimiter } from '../../security/auth-failure-limiter.ts'
import { CredentialCache } from '../../security/credential-cache.ts'
import type { Actor } from '../tunnels/tunnel-service.ts'

/** Prefix of every admin API token, so a leaked one is recognisable (secret scanners, logs). */
export const API_TOKEN_PREFIX = 'atadm_'
const TOKEN_BYTES = 32
const NAME_MAX = 100
/** last_used_at is written at most this often per token: a busy script must not cost a write per call */
const TOUCH_EVERY_MS = 60_000

export function hashApiToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

export function newApiToken(): string {
  return API_TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url')
}

export interface ApiTokenServiceOptions {
  /** failed authentications from one address before it gets 429 for the rest of the window */
  maxFailures?: number
  windowMs?: number
  now?: () => number
  /** the organization failed attempts are audited under (the server has one) */
  auditOrgId: string
  /** token records kept in memory so a valid token costs no lookup (decision 38) */
  cache?: { ttlMs?: number; maxEntries?: number }
  /** told after a token is created or revoked (the cluster bus tells the other replicas) */
  onTokenChanged?: (tokenId: string, change: 'created' | 'revoked') => void
}

/**
 * Admin API tokens: who presented which bearer token, and the org admin's list/create/revoke.
 *
 * Failed authentications are counted per source address. Past the limit the address's failures
 * get 429 and cost no database lookup, and the audit log gets one "auth.rate_limited" event per
 * window instead of one row per attempt. A valid token still passes from there (decision 38): it
 * verifies against the cache, or is looked up because its hash is one the database holds.
 */
export class ApiTokenService {
  readonly #tokens: ApiTokenRepository
  readonly #audit: AuditRepository
  readonly #log: Logger
  readonly #limiter: AuthFailureLimiter
  readonly #auditOrgId: string
  readonly #now: () => number
  readonly #touchedAt = new Map<string, number>()
  readonly #limitAudited = new Map<string, number>()
  /** identities by token hash; a negative entry for a hash no token has */
  readonly #cache: CredentialCache<ApiTokenIdentity>
  /**
   * The hashes of the tokens the database holds (to their ids), as far as this replica knows: read
   * at start, kept in step by creates and revocations here and on the bus. Only decides whether a
   * source over its limit may still have a hash looked up; never filled from what a client sends.
   */
  readonly #knownHashes = new Map<string, string>()
  readonly #onTokenChanged: ((tokenId: string, change: 'created' | 'revoked') => void) | undefined

  constructor(deps: { tokens: ApiTokenRepository; audit: AuditRepository; log: Logger }, options: ApiTokenServiceOptions) {
    this.#tokens = deps.tokens
    this.#audit = deps.audit
    this.#log = deps.log
    this.#now = options.now ?? Date.now
    this.#limiter = new AuthFailureLimiter({ maxFailures: options.maxFailures ?? 20, windowMs: options.windowMs ?? 60_000, now: this.#now })
    this.#auditOrgId = options.auditOrgId
    this.#cache = new CredentialCache({ ...options.cache, now: this.#now })
    this.#onTokenChanged = options.onTokenChanged
  }

  /** Reads which token hashes exist; before the first request. */
  async start(): Promise<void> {
    await this.#reloadKnown()
  }

  /** The actor behind an Authorization header, or a TunnelError (401, or 429 past the limit). */
  async authenticate(authorization: string | undefined, sourceAddress: string): Promise<Actor> {
    // Read once, before this attempt counts: past the limit, failures are answered 429.
    const limited = this.#limiter.isBlocked(sourceAddress)
    if (authorization === undefined) {
      if (limited) return this.#rateLimited(sourceAddress)
      throw new TunnelError('TUN_ERR_AUTH_TOKEN_MISSING')
    }
    const m = /^Bearer\s+(\S+)$/.exec(authorization)
    if (m === null) return this.#fail(limited, sourceAddress, 'malformed', 'Authorization must be "Bearer <token>"')
    // The lookup is by SHA-256 of the token: the database compares digests, never the secret, and
    // the cache is keyed by the same digest.
    const hash = hashApiToken(m[1]!)
    const cached = this.#cache.peek(hash)
    let identity: ApiTokenIdentity | undefined
    if (cached !== undefined) identity = cached.value
    else if (limited && !this.#knownHashes.has(hash)) return this.#rateLimited(sourceAddress)
    else {
      identity = await this.#cache.get(hash, (h) => this.#tokens.findByHash(h))
      if (identity === undefined) this.#knownHashes.delete(hash)
      else this.#knownHashes.set(hash, identity.id)
    }
    if (identity === undefined) return this.#fail(limited, sourceAddress, 'unknown')
    this.#touch(identity.id)
    return { orgId: identity.orgId, name: `token:${identity.name}`, sourceAddress, tokenId: identity.id }
  }

  async list(actor: Actor): Promise<ApiToken[]> {
    return this.#tokens.list(actor.orgId)
  }

  /** The token's value is returned once, here; only its hash is kept. */
  async create(actor: Actor, input: { name: unknown }): Promise<ApiToken & { token: string }> {
    const name = validateTokenName(input.name)
    if ((await this.#tokens.list(actor.orgId)).some((t) => t.name === name)) {
      throw new TunnelError('TUN_ERR_TOKEN_NAME_INVALID', `a token named "${name}" already exists`)
    }
    const token = newApiToken()
    const tokenHash = hashApiToken(token)
    const created = await this.#tokens.create({ id: randomUUID(), orgId: actor.orgId, name, tokenHash })
    this.#cache.invalidate(tokenHash)
    this.#knownHashes.set(tokenHash, created.id)
    this.#onTokenChanged?.(created.id, 'created')
    await this.#record(actor, 'token.create', created.id, { name })
    return { ...created, token }
  }

  /**
   * Revokes at once: the next request with it is refused. The organization's last token is kept,
   * because without one nothing but a database writer could ever administer it again.
   */
  async revoke(actor: Actor, id: string): Promise<void> {
    const all = await this.#tokens.list(actor.orgId)
    const target = all.find((t) => t.id === id)
    if (target === undefined) throw new TunnelError('TUN_ERR_TOKEN_NOT_FOUND', `API token "${id}" not found`)
    if (all.length === 1) {
      throw new TunnelError('TUN_ERR_TOKEN_LAST', `"${target.name}" is the organization's last API token; create another before revoking it`)
    }
    if (!(await this.#tokens.delete(actor.orgId, id))) throw new TunnelError('TUN_ERR_TOKEN_NOT_FOUND', `API token "${id}" not found`)
    this.tokenChanged(id, 'revoked')
    this.#onTokenChanged?.(id, 'revoked')
    await this.#record(actor, 'token.revoke', id, { name: target.name })
  }

  /**
   * A token was created or revoked, here or on another replica. A revoked token's cached identity
   * goes at once, so its next request is refused; a created one's hash becomes worth a lookup.
   */
  tokenChanged(tokenId: string, change: 'created' | 'revoked'): void {
    if (change === 'revoked') {
      this.#cache.invalidateWhere((identity) => identity.id === tokenId)
      this.#touchedAt.delete(tokenId)
      for (const [hash, id] of this.#knownHashes) if (id === tokenId) this.#knownHashes.delete(hash)
      return
    }
    this.#reloadKnown().catch((err: unknown) => this.#log.warn({ err }, 'could not re-read the API token hashes'))
  }

  async #reloadKnown(): Promise<void> {
    const all = await this.#tokens.listHashes()
    this.#knownHashes.clear()
    for (const t of all) this.#knownHashes.set(t.tokenHash, t.id)
  }

  async #rateLimited(sourceAddress: string): Promise<never> {
    await this.#auditLimitOnce(sourceAddress)
    throw new TunnelError(
      'TUN_ERR_AUTH_RATE_LIMITED',
      `too many failed API authentications from ${sourceAddress}; try again within ${Math.ceil(this.#limiter.windowMs / 1000)} s`,
    )
  }

  async #fail(limited: boolean, sourceAddress: string, reason: 'malformed' | 'unknown', message?: string): Promise<never> {
    if (limited) return this.#rateLimited(sourceAddress)
    this.#limiter.recordFailure(sourceAddress)
    this.#log.warn({ sourceAddress, reason }, 'admin API authentication failed')
    await this.#audit.record({ orgId: this.#auditOrgId, actor: 'anonymous', action: 'auth.failed', target: null, sourceAddress, details: { reason } })
    throw new TunnelError('TUN_ERR_AUTH_TOKEN_INVALID', message)
  }

  async #auditLimitOnce(sourceAddress: string): Promise<void> {
    const now = this.#now()
    const last = this.#limitAudited.get(sourceAddress)
    if (last !== undefined && now - last < this.#limiter.windowMs) return
    if (this.#limitAudited.size >= 10_000) this.#limitAudited.clear()
    this.#limitAudited.set(sourceAddress, now)
    this.#log.warn({ sourceAddress }, 'admin API authentication rate limited')
    await this.#audit.record({ orgId: this.#auditOrgId, actor: 'anonymous', action: 'auth.rate_limited', target: null, sourceAddress, details: { maxFailures: this.#limiter.maxFailures, windowMs: this.#limiter.windowMs } })
  }

  #touch(id: string): void {
    const now = this.#now()
    const last = this.#touchedAt.get(id)
    if (last !== undefined && now - last < TOUCH_EVERY_MS) return
    this.#touchedAt.set(id, now)
    this.#tokens.touch(id, new Date(now).toISOString()).catch((err: unknown) => this.#log.warn({ err }, 'could not record API token use'))
  }

  async #record(actor: Actor, action: string, target: string, details: Record<string, unknown>): Promise<void> {
    await this.#audit.record({ orgId: actor.orgId, actor: actor.name, action, target, sourceAddress: actor.sourceAddress, details })
  }
}

function validateTokenName(v: unknown): string {
  if (typeof v !== 'string') throw new TunnelError('TUN_ERR_TOKEN_NAME_INVALID', 'token name is required')
  // Checked before trimming: a leading U+FEFF would otherwise vanish into the trim unnoticed.
  const problem = displayNameProblem(v)
  if (problem !== undefined) {
    const refusal = displayNameRefusal('token name', problem)
    throw new TunnelError('TUN_ERR_TOKEN_NAME_INVALID', refusal.message, { details: refusal.details })
  }
  const name = v.trim()
  if (name.length === 0) throw new TunnelError('TUN_ERR_TOKEN_NAME_INVALID', 'token name must not be empty')
  if (name.length > NAME_MAX) throw new TunnelError('TUN_ERR_TOKEN_NAME_INVALID', `token name must be at most ${NAME_MAX} characters`)
  return name
}
