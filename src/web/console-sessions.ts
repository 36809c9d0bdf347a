import { createHash, randomBytes } from 'node:crypto'
import type { ConsoleSessionRepository, ConsoleUser, ConsoleUserRepository } from '../store/index.ts'

export interface ConsoleSessionOptions {
  /** [idleTimeoutMs=1800000] a session unused this long is over (30 min) */
  idleTimeoutMs: number
  /** [maxAgeMs=43200000] a session is over this long after sign-in, used or not (12 h) */
  maxAgeMs: number
  now?: () => number
}

export const DEFAULT_SESSION_OPTIONS: Readonly<ConsoleSessionOptions> = Object.freeze({ idleTimeoutMs: 30 * 60_000, maxAgeMs: 12 * 3600_000 })

/** What a request with a live session is allowed to know about it. */
export interface ResolvedSession {
  user: Pick<ConsoleUser, 'id' | 'username' | 'orgId'>
  /** the token state-changing requests must echo in X-CSRF-Token */
  csrfToken: string
}

const SESSION_ID_BYTES = 32
// last_seen_at is rewritten at most this often: a console polling every second must not turn every
// poll into a database write, and idle expiry does not need finer grain.
const TOUCH_INTERVAL_MS = 60_000

function sha256(text: string, domain: string): Buffer {
  return createHash('sha256').update(domain).update('\0').update(text).digest()
}

/** The database key of a session: its id is never stored, so a copied table holds no live session. */
export function sessionIdHash(sessionId: string): string {
  return sha256(sessionId, 'apptunnel-console-session').toString('hex')
}

/**
 * The session's CSRF token, derived from the session id (which only the browser and this process
 * see) rather than stored: it changes with every sign-in and a copied table cannot produce it.
 */
export function csrfTokenFor(sessionId: string): string {
  return sha256(sessionId, 'apptunnel-console-csrf').toString('base64url')
}

/**
 * Console sign-in sessions: 32 random bytes in an HttpOnly cookie, the SHA-256 in `console_session`,
 * expiring after `idleTimeoutMs` without use or `maxAgeMs` after sign-in, whichever comes first.
 */
export class ConsoleSessions {
  readonly #sessions: ConsoleSessionRepository
  readonly #users: ConsoleUserRepository
  readonly #options: Required<ConsoleSessionOptions>

  constructor(deps: { sessions: ConsoleSessionRepository; users: ConsoleUserRepository }, options: Partial<ConsoleSessionOptions> = {}) {
    this.#sessions = deps.sessions
    this.#users = deps.users
    this.#options = { ...DEFAULT_SESSION_OPTIONS, now: Date.now, ...options }
  }

  get maxAgeMs(): number {
    return this.#options.maxAgeMs
  }

  /** Starts a session for a user who just proved their password; returns the cookie value. */
  async create(user: ConsoleUser, sourceAddress: string | undefined): Promise<{ sessionId: string; csrfToken: string }> {
    const now = this.#options.now()
    // Sign-ins are rare: a good moment to drop the sessions that ran out since the last one.
    await this.#sessions.deleteExpired(new Date(now - this.#options.idleTimeoutMs).toISOString(), new Date(now - this.#options.maxAgeMs).toISOString())
    const sessionId = randomBytes(SESSION_ID_BYTES).toString('base64url')
    const at = new Date(now).toISOString()
    await this.#sessions.create({ idHash: sessionIdHash(sessionId), userId: user.id, createdAt: at, lastSeenAt: at, sourceAddress: sourceAddress ?? null })
    return { sessionId, csrfToken: csrfTokenFor(sessionId) }
  }

  /** The live session behind a cookie value, or undefined (unknown, expired: expired ones are deleted). */
  async resolve(sessionId: string): Promise<ResolvedSession | undefined> {
    const idHash = sessionIdHash(sessionId)
    const record = await this.#sessions.find(idHash)
    if (record === undefined) return undefined
    const now = this.#options.now()
    const idleMs = now - Date.parse(record.lastSeenAt)
    const ageMs = now - Date.parse(record.createdAt)
    if (idleMs >= this.#options.idleTimeoutMs || ageMs >= this.#options.maxAgeMs) {
      await this.#sessions.delete(idHash)
      return undefined
    }
    const user = await this.#users.findById(record.userId)
    if (user === undefined) return undefined
    if (idleMs >= TOUCH_INTERVAL_MS) await this.#sessions.touch(idHash, new Date(now).toISOString())
    return { user: { id: user.id, username: user.username, orgId: user.orgId }, csrfToken: csrfTokenFor(sessionId) }
  }

  /** Signs the browser out; true when there was a session. */
  destroy(sessionId: string): Promise<boolean> {
    return this.#sessions.delete(sessionIdHash(sessionId))
  }
}
