import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createServer, request, type Server } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { AuditRepository, ConsoleUserRepository, openDatabase, type Database } from '../store/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { ConsoleAuth } from './console-auth.ts'
import { hashPassword } from './password-hash.ts'

checkNoLeakedHandles()

const FAST = { N: 1024, r: 8, p: 1 }

describe('console sign-in over HTTP', () => {
  let database: Database
  let server: Server
  let host: string

  before(async () => {
    database = await openDatabase(':memory:')
    const users = new ConsoleUserRepository(database)
    for (const username of ['admin', 'operator']) {
      await users.createIfAbsent({ id: randomUUID(), orgId: null, username, passwordHash: await hashPassword(`${username} password!`, FAST) })
    }
    const auth = new ConsoleAuth({ sessionPath: '/session', cookieName: '__Host-test', limiter: { maxFailuresPerUser: 3, maxFailuresPerAddress: 50 } }, { database, auditOrgId: 'instance', log: silentLogger() })
    server = createServer((req, res) => {
      if (auth.matches(req.url ?? '')) return auth.handle(req, res)
      auth.require(req).then(
        (who) => res.writeHead(200).end(JSON.stringify(who)),
        (err: { httpStatus: number; code: string }) => res.writeHead(err.httpStatus).end(err.code),
      )
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    host = `127.0.0.1:${(server.address() as { port: number }).port}`
  })
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()))
    await database.close()
  })

  function call(method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<{ status: number; body: string; cookie: string | undefined }> {
    return new Promise((resolve, reject) => {
      const json = body === undefined ? undefined : JSON.stringify(body)
      const req = request({ host: '127.0.0.1', port: Number(host.split(':')[1]), method, path, agent: false, headers: { host, ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers } }, (res) => {
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, cookie: res.headers['set-cookie']?.[0] }))
      })
      req.on('error', reject)
      req.end(json)
    })
  }
  const origin = (): Record<string, string> => ({ origin: `https://${host}`, 'sec-fetch-site': 'same-origin' })

  test('sign in sets a __Host- cookie that is HttpOnly, Secure and SameSite=Strict; sign out ends it', async () => {
    const res = await call('POST', '/session', origin(), { username: 'admin', password: 'admin password!' })
    assert.equal(res.status, 200, res.body)
    assert.match(res.cookie ?? '', /^__Host-test=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=43200$/)
    const { csrfToken } = JSON.parse(res.body) as { csrfToken: string }
    const cookie = res.cookie!.split(';')[0]!
    assert.equal((await call('GET', '/session', { cookie })).status, 200)
    assert.equal((await call('DELETE', '/session', { cookie, ...origin() })).status, 403, 'sign-out needs the CSRF token too')
    const out = await call('DELETE', '/session', { cookie, ...origin(), 'x-csrf-token': csrfToken })
    assert.equal(out.status, 200)
    assert.match(out.cookie ?? '', /^__Host-test=; .*Max-Age=0$/)
    assert.equal((await call('GET', '/anything', { cookie })).body, 'TUN_ERR_CONSOLE_SESSION_REQUIRED')
    const audit = await new AuditRepository(database).list('instance')
    assert.deepEqual(audit.slice(0, 2).map((e) => [e.action, e.actor, e.sourceAddress]), [
      ['console.logout', 'console:admin', '127.0.0.1'],
      ['console.login', 'console:admin', '127.0.0.1'],
    ])
  })

  test('a user name guessed too often is locked for the window, even with the right password; others are not', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await call('POST', '/session', origin(), { username: 'operator', password: `guess ${i}` })
      assert.equal(res.status, 401)
      assert.match(res.body, /TUN_ERR_CONSOLE_LOGIN_FAILED/)
    }
    const locked = await call('POST', '/session', origin(), { username: 'operator', password: 'operator password!' })
    assert.equal(locked.status, 429)
    assert.match(locked.body, /TUN_ERR_CONSOLE_LOGIN_RATE_LIMITED/)
    assert.equal(locked.cookie, undefined)
    assert.equal((await call('POST', '/session', origin(), { username: 'admin', password: 'admin password!' })).status, 200)
  })

  test('an unknown user gets the same answer as a wrong password', async () => {
    const res = await call('POST', '/session', origin(), { username: 'nobody', password: 'whatever it is' })
    assert.equal(res.status, 401)
    assert.match(res.body, /the user name or password is wrong/)
  })
})
