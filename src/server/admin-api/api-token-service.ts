import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { TunnelError } from '../../errors/index.ts'
import { displayNameProblem, displayNameRefusal } from '../../security/display-name.ts'
import type { Logger } from '../../observability/index.ts'
import type { ApiToken, ApiTokenRepository, AuditRepository } from '../../store/index.ts'
import { AuthFailureLimiter } from '../../security/auth-failure-limiter.ts'
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
}

/**
 * Admin API tokens: who presented which bearer token, and the org admin's list/create/revoke.
 *
 * Failed authentications are counted per source address. Past the limit the address gets 429
 * without a database lookup, so guessing costs the server nothing and the audit log gets one
 * "auth.rate_limited" event per window instead of one row per attempt.
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

  constructor(deps: { tokens: ApiTokenRepository; audit: AuditRepository; log: Logger }, options: ApiTokenServiceOptions) {
    this.#tokens = deps.tokens
    this.#audit = deps.audit
    this.#log = deps.log
    this.#now = options.now ?? Date.now
    this.#limiter = new AuthFailureLimiter({ maxFailures: options.maxFailures ?? 20, windowMs: options.windowMs ?? 60_000, now: this.#now })
    this.#auditOrgId = options.auditOrgId
  }

  /** The actor behind an Authorization header, or a TunnelError (401, or 429 past the limit). */
  async authenticate(authorization: string | undefined, sourceAddress: string): Promise<Actor> {
    if (this.#limiter.isBlocked(sourceAddress)) {
      await this.#auditLimitOnce(sourceAddress)
      throw new TunnelError(
        'TUN_ERR_AUTH_RATE_LIMITED',
        `too many failed API authentications from ${sourceAddress}; try again within ${Math.ceil(this.#limiter.windowMs / 1000)} s`,
      )
    }
    if (authorization === undefined) throw new TunnelError('TUN_ERR_AUTH_TOKEN_MISSING')
    const m = /^Bearer\s+(\S+)$/.exec(authorization)
    if (m === null) return this.#fail(sourceAddress, 'malformed', 'Authorization must be "Bearer <token>"')
    // The lookup is by SHA-256 of the token: the database compares digests, never the secret.
    const identity = await this.#tokens.findByHash(hashApiToken(m[1]!))
    if (identity === undefined) return this.#fail(sourceAddress, 'unknown')
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
    const created = await this.#tokens.create({ id: randomUUID(), orgId: actor.orgId, name, tokenHash: hashApiToken(token) })
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
    this.#touchedAt.delete(id)
    await this.#record(actor, 'token.revoke', id, { name: target.name })
  }

  async #fail(sourceAddress: string, reason: 'malformed' | 'unknown', message?: string): Promise<never> {
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
