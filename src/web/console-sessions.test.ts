import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { ConsoleSessionRepository, ConsoleUserRepository, type ConsoleUser, type Database } from '../store/index.ts'
import { databaseTargets } from '../testing/test-databases.ts'
import { ensureBootstrapAdmin } from './bootstrap-admin.ts'
import { ConsoleSessions, csrfTokenFor, sessionIdHash } from './console-sessions.ts'
import { verifyPassword } from './password-hash.ts'

const FAST = { N: 1024, r: 8, p: 1 }
const targets = await databaseTargets()

for (const target of targets) {
  describe(`console users and sessions on ${target.name}`, { skip: target.skip }, () => {
    let database: Database
    let users: ConsoleUserRepository
    let repo: ConsoleSessionRepository
    let dir: string
    let t = Date.parse('2030-01-01T00:00:00.000Z')
    const now = (): number => t

    before(async () => {
      database = await target.open()
      users = new ConsoleUserRepository(database)
      repo = new ConsoleSessionRepository(database)
      dir = await mkdtemp(join(tmpdir(), 'apptunnel-console-'))
    })
    after(async () => {
      await database?.close()
      await target.dispose()
      await rm(dir, { recursive: true, force: true })
    })

    async function newUser(): Promise<ConsoleUser> {
      const username = `user-${randomUUID()}`
      assert.equal(await users.createIfAbsent({ id: randomUUID(), orgId: null, username, passwordHash: 'scrypt$x' }), true)
      return (await users.findByUsername(username))!
    }

    test('the bootstrap admin is created once, its password only in a 0600 file', async () => {
      const first = await ensureBootstrapAdmin(users, { orgId: null, dataDir: dir, params: FAST })
      assert.ok(first !== undefined)
      const password = (await readFile(first.file, 'utf8')).trim()
      assert.equal(password.length, 24)
      assert.equal((await stat(first.file)).mode & 0o777, 0o600)
      const admin = await users.findByUsername('admin')
      assert.ok(admin !== undefined && !admin.passwordHash.includes(password))
      assert.equal(await verifyPassword(password, admin.passwordHash), true)
      assert.equal(await ensureBootstrapAdmin(users, { orgId: null, dataDir: dir, params: FAST }), undefined, 'a second start creates nothing')
      assert.equal((await readFile(first.file, 'utf8')).trim(), password, 'and leaves the file alone')
      assert.equal(await users.createIfAbsent({ id: randomUUID(), orgId: null, username: 'admin', passwordHash: 'scrypt$y' }), false, 'the name is unique')
    })

    test('a session resolves to its user; the database holds only the hash of its id', async () => {
      const user = await newUser()
      const sessions = new ConsoleSessions({ sessions: repo, users }, { now })
      const { sessionId, csrfToken } = await sessions.create(user, '127.0.0.1')
      assert.equal(Buffer.from(sessionId, 'base64url').length, 32)
      assert.equal(csrfToken, csrfTokenFor(sessionId))
      assert.notEqual(csrfToken, sessionId)
      const row = await repo.find(sessionIdHash(sessionId))
      assert.equal(row?.userId, user.id)
      assert.equal(await repo.find(sessionId), undefined, 'the raw id is not a key')
      const resolved = await sessions.resolve(sessionId)
      assert.deepEqual(resolved, { user: { id: user.id, username: user.username, orgId: null }, csrfToken })
      assert.equal(await sessions.resolve(sessionId.slice(0, -1) + (sessionId.endsWith('A') ? 'B' : 'A')), undefined)
    })

    test('a session ends after the idle timeout, and use keeps it alive', async () => {
      const user = await newUser()
      const sessions = new ConsoleSessions({ sessions: repo, users }, { now, idleTimeoutMs: 10 * 60_000, maxAgeMs: 3600_000 })
      const { sessionId } = await sessions.create(user, '127.0.0.1')
      t += 9 * 60_000
      assert.ok(await sessions.resolve(sessionId), 'used after 9 min')
      t += 9 * 60_000
      assert.ok(await sessions.resolve(sessionId), 'used again 9 min later: the last use counts')
      t += 10 * 60_000
      assert.equal(await sessions.resolve(sessionId), undefined, 'idle for 10 min')
      assert.equal(await repo.find(sessionIdHash(sessionId)), undefined, 'and deleted')
    })

    test('a session ends at its absolute age however much it is used', async () => {
      const user = await newUser()
      const sessions = new ConsoleSessions({ sessions: repo, users }, { now, idleTimeoutMs: 10 * 60_000, maxAgeMs: 30 * 60_000 })
      const { sessionId } = await sessions.create(user, '127.0.0.1')
      for (let i = 0; i < 5; i++) {
        t += 5 * 60_000
        assert.ok(await sessions.resolve(sessionId), `use ${i}`)
      }
      t += 5 * 60_000
      assert.equal(await sessions.resolve(sessionId), undefined, '30 min after sign-in')
    })

    test('sign-out ends one session; a new sign-in sweeps expired ones', async () => {
      const user = await newUser()
      const sessions = new ConsoleSessions({ sessions: repo, users }, { now, idleTimeoutMs: 60_000, maxAgeMs: 3600_000 })
      const a = await sessions.create(user, '127.0.0.1')
      const b = await sessions.create(user, '127.0.0.1')
      assert.equal(await sessions.destroy(a.sessionId), true)
      assert.equal(await sessions.resolve(a.sessionId), undefined)
      assert.ok(await sessions.resolve(b.sessionId))
      t += 120_000
      await sessions.create(user, '127.0.0.1')
      assert.equal(await repo.find(sessionIdHash(b.sessionId)), undefined, 'swept without being looked up')
      assert.equal(await repo.deleteForUser(user.id), 1)
    })
  })
}
