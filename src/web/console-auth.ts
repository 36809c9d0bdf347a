import type { IncomingMessage, ServerResponse } from 'node:http'
import { TunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import { AuditRepository, ConsoleSessionRepository, ConsoleUserRepository, type Database } from '../store/index.ts'
import { ConsoleSessions, type ConsoleSessionOptions, type ResolvedSession } from './console-sessions.ts'
import { readJsonObject, sendError, sendJson } from './json-http.ts'
import { LoginLimiter, type LoginLimiterOptions } from './login-limiter.ts'
import { hashPassword, needsRehash, passwordProblem, verifyPassword } from './password-hash.ts'
import { crossOriginProblem, csrfTokenMatches, isStateChanging } from './request-origin.ts'

/** Who is acting, for services and the audit log. */
export interface ConsoleIdentity {
  userId: string
  username: string
  /** the user's organization on a tunnel server; null in an on-prem instance */
  orgId: string | null
  sourceAddress: string
}

export interface ConsoleAuthOptions {
  /** the session resource: GET who am I, POST sign in, DELETE sign out */
  sessionPath: string
  /** `__Host-…`: the browser then insists on Secure, Path=/ and no Domain */
  cookieName: `__Host-${string}`
  session?: Partial<ConsoleSessionOptions>
  limiter?: LoginLimiterOptions
}

export interface ConsoleAuthDeps {
  database: Database
  /** the organization audit events are filed under (on-prem: a fixed name) */
  auditOrgId: string
  log: Logger
  /** facts the signed-in pages need besides the user (organization name, limits) */
  describe?: () => Record<string, unknown>
}

const USERNAME_MAX = 100

/**
 * Sign-in for a console: the session endpoints, and `identify()` for every other request, which
 * checks the session cookie and, for requests that change something, the CSRF token and origin.
 */
export class ConsoleAuth {
  readonly #options: ConsoleAuthOptions
  readonly #deps: ConsoleAuthDeps
  readonly #users: ConsoleUserRepository
  readonly #audit: AuditRepository
  readonly #sessions: ConsoleSessions
  readonly #limiter: LoginLimiter
  readonly #log: Logger

  constructor(options: ConsoleAuthOptions, deps: ConsoleAuthDeps) {
    this.#options = options
    this.#deps = deps
    this.#users = new ConsoleUserRepository(deps.database)
    this.#audit = new AuditRepository(deps.database)
    this.#sessions = new ConsoleSessions({ sessions: new ConsoleSessionRepository(deps.database), users: this.#users }, options.session ?? {})
    this.#limiter = new LoginLimiter(options.limiter ?? {})
    this.#log = deps.log.child({ component: 'console-auth' })
  }

  matches(path: string): boolean {
    return path === this.#options.sessionPath || path === `${this.#options.sessionPath}/password`
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const route = (req.url ?? '').split('?')[0] === `${this.#options.sessionPath}/password` ? this.#changePassword(req, res) : this.#route(req, res)
    route.catch((err: unknown) => sendError(res, err, this.#log))
  }

  /**
   * POST {sessionPath}/password {currentPassword, newPassword}: the signed-in user's own password.
   * The current one is checked (and a wrong one counts as a failed sign-in); every other session of
   * the user ends, and this browser gets a fresh session.
   */
  async #changePassword(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${this.#options.sessionPath}/password`)
    const who = await this.require(req)
    const body = await readJsonObject(req)
    const current = typeof body.currentPassword === 'string' ? body.currentPassword : ''
    const next = typeof body.newPassword === 'string' ? body.newPassword : ''
    if (this.#limiter.isBlocked(who.sourceAddress, who.username)) throw new TunnelError('TUN_ERR_CONSOLE_LOGIN_RATE_LIMITED')
    const user = await this.#users.findByUsername(who.username)
    if (user === undefined || !(await verifyPassword(current, user.passwordHash))) {
      this.#limiter.recordFailure(who.sourceAddress, who.username)
      await this.#record(who.username, 'console.password.change.failed', who.sourceAddress)
      throw new TunnelError('TUN_ERR_CONSOLE_LOGIN_FAILED', 'the current password is wrong')
    }
    const problem = passwordProblem(next)
    if (problem !== undefined) throw new TunnelError('TUN_ERR_CONSOLE_PASSWORD_INVALID', problem)
    await this.#users.setPasswordHash(user.id, await hashPassword(next))
    const signedOut = await new ConsoleSessionRepository(this.#deps.database).deleteForUser(user.id)
    const { sessionId, csrfToken } = await this.#sessions.create(user, who.sourceAddress)
    await this.#record(who.username, 'console.password.change', who.sourceAddress)
    this.#log.info({ username: who.username, signedOut }, 'console password changed')
    sendJson(res, 200, { ...this.#signedIn(user.username, csrfToken), signedOut: Math.max(0, signedOut - 1) }, { 'set-cookie': this.#cookie(sessionId, Math.floor(this.#sessions.maxAgeMs / 1000)) })
  }

  /**
   * The signed-in user behind the request's cookie, or undefined when it carries none (the caller
   * may then try another credential). A cookie that names no live session, or a state-changing
   * request without the CSRF token from our own origin, is refused.
   */
  async identify(req: IncomingMessage): Promise<ConsoleIdentity | undefined> {
    const found = await this.#session(req)
    if (found === undefined) return undefined
    if (isStateChanging(req.method)) {
      const problem = crossOriginProblem(req) ?? (csrfTokenMatches(req, found.session.csrfToken) ? undefined : 'the X-CSRF-Token header is missing or wrong')
      if (problem !== undefined) {
        this.#log.warn({ method: req.method, url: req.url, remoteAddress: req.socket.remoteAddress, problem }, 'cross-site console request refused')
        throw new TunnelError('TUN_ERR_CONSOLE_CROSS_SITE', `cross-site request refused: ${problem}`)
      }
    }
    const u = found.session.user
    return { userId: u.id, username: u.username, orgId: u.orgId, sourceAddress: req.socket.remoteAddress ?? 'unknown' }
  }

  /** Like identify(), but a request without a session cookie is refused too. */
  async require(req: IncomingMessage): Promise<ConsoleIdentity> {
    const who = await this.identify(req)
    if (who === undefined) throw new TunnelError('TUN_ERR_CONSOLE_SESSION_REQUIRED')
    return who
  }

  async #session(req: IncomingMessage): Promise<{ sessionId: string; session: ResolvedSession } | undefined> {
    const sessionId = readCookie(req, this.#options.cookieName)
    if (sessionId === undefined) return undefined
    const session = await this.#sessions.resolve(sessionId)
    if (session === undefined) throw new TunnelError('TUN_ERR_CONSOLE_SESSION_REQUIRED', 'your console session has expired: sign in again')
    return { sessionId, session }
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET') {
      const found = await this.#session(req)
      if (found === undefined) throw new TunnelError('TUN_ERR_CONSOLE_SESSION_REQUIRED')
      sendJson(res, 200, this.#signedIn(found.session.user.username, found.session.csrfToken))
      return
    }
    if (req.method === 'POST') return this.#signIn(req, res)
    if (req.method === 'DELETE') {
      const who = await this.require(req)
      const sessionId = readCookie(req, this.#options.cookieName)!
      await this.#sessions.destroy(sessionId)
      await this.#record(who.username, 'console.logout', who.sourceAddress)
      sendJson(res, 200, { signedOut: true }, { 'set-cookie': this.#cookie('', 0) })
      return
    }
    throw new TunnelError('TUN_ERR_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${this.#options.sessionPath}`)
  }

  async #signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A forged sign-in would put the victim's browser into the attacker's account (login CSRF).
    const problem = crossOriginProblem(req)
    if (problem !== undefined) throw new TunnelError('TUN_ERR_CONSOLE_CROSS_SITE', `cross-site request refused: ${problem}`)
    const body = await readJsonObject(req)
    const username = typeof body.username === 'string' ? body.username.trim() : ''
    const password = typeof body.password === 'string' ? body.password : ''
    if (username === '' || username.length > USERNAME_MAX) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'enter your user name')
    if (password === '') throw new TunnelError('TUN_ERR_API_BAD_REQUEST', 'enter your password')
    const address = req.socket.remoteAddress ?? 'unknown'
    if (this.#limiter.isBlocked(address, username)) {
      this.#log.warn({ username, remoteAddress: address }, 'console sign-in refused: too many failures')
      const minutes = Math.ceil(this.#limiter.windowMs / 60_000)
      throw new TunnelError('TUN_ERR_CONSOLE_LOGIN_RATE_LIMITED', `too many failed sign-ins: try again in up to ${minutes} minute${minutes === 1 ? '' : 's'}`)
    }
    const user = await this.#users.findByUsername(username)
    if (!(await verifyPassword(password, user?.passwordHash))) {
      this.#limiter.recordFailure(address, username)
      await this.#record(username, 'console.login.failed', address)
      this.#log.info({ username, remoteAddress: address }, 'console sign-in failed')
      throw new TunnelError('TUN_ERR_CONSOLE_LOGIN_FAILED')
    }
    const signedIn = user!
    if (needsRehash(signedIn.passwordHash)) await this.#users.setPasswordHash(signedIn.id, await hashPassword(password), signedIn.passwordChangedAt)
    const previous = readCookie(req, this.#options.cookieName)
    if (previous !== undefined) await this.#sessions.destroy(previous)
    const { sessionId, csrfToken } = await this.#sessions.create(signedIn, address)
    await this.#record(signedIn.username, 'console.login', address)
    sendJson(res, 200, this.#signedIn(signedIn.username, csrfToken), { 'set-cookie': this.#cookie(sessionId, Math.floor(this.#sessions.maxAgeMs / 1000)) })
  }

  #signedIn(username: string, csrfToken: string): Record<string, unknown> {
    return { user: { username }, csrfToken, ...(this.#deps.describe?.() ?? {}) }
  }

  #cookie(value: string, maxAgeS: number): string {
    return `${this.#options.cookieName}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`
  }

  async #record(username: string, action: string, sourceAddress: string): Promise<void> {
    await this.#audit.record({ orgId: this.#deps.auditOrgId, actor: `console:${username}`, action, target: null, sourceAddress })
  }
}

/** One cookie's value from the Cookie header; undefined when absent or empty. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim()
      return value === '' ? undefined : value
    }
  }
  return undefined
}
