import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { createLogger, silentLogger, type Logger } from '../observability/index.ts'
import { SecurityPropertyRepository, type Database } from '../store/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { databaseTargets } from '../testing/test-databases.ts'
import { deriveClusterKey } from './auth/auth-transcript.ts'
import { CLUSTER_KEY_PROPERTY, ClusterKeySupplier, type KeyChangeEvent, type KeySupplierOptions } from './key-supplier.ts'

checkNoLeakedHandles()

const targets = await databaseTargets()

function fakeClock(): { now(): number; advance(ms: number): void } {
  let t = 1_700_000_000_000
  return { now: () => t, advance: (ms) => void (t += ms) }
}

function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }) })
  return { log, lines }
}

/** Counts reads, to check that on-demand refreshes are spaced. */
class CountingProperties extends SecurityPropertyRepository {
  reads = 0
  override get(key: string): Promise<string | undefined> {
    this.reads++
    return super.get(key)
  }
}

const OPTIONS: KeySupplierOptions = { disabledAtStart: false, pollIntervalMs: 60_000, graceMs: 150_000, warnIntervalMs: 60_000, refreshMinIntervalMs: 0 }

for (const target of targets) {
  describe(`cluster key supplier on ${target.name}`, { skip: target.skip }, () => {
    let database: Database
    let properties: SecurityPropertyRepository
    const suppliers: ClusterKeySupplier[] = []
    const handles: Database[] = []

    before(async () => {
      database = await target.open()
      properties = new SecurityPropertyRepository(database)
    })
    after(async () => {
      for (const s of suppliers) await s.close()
      for (const h of handles) await h.close()
      await database?.close()
      await target.dispose()
    })

    function supplier(options: Partial<KeySupplierOptions> = {}, deps: { log?: Logger; clock?: { now(): number }; properties?: SecurityPropertyRepository } = {}): ClusterKeySupplier {
      const s = new ClusterKeySupplier({ ...OPTIONS, ...options }, { properties: deps.properties ?? properties, log: deps.log ?? silentLogger(), ...(deps.clock ? { clock: deps.clock } : {}) })
      suppliers.push(s)
      return s
    }

    // Runs first, on an empty table.
    test('nodes starting together race to generate the key: one insert wins, every node adopts it', async () => {
      const racers = await Promise.all(Array.from({ length: 6 }, () => target.open()))
      handles.push(...racers)
      const changes: KeyChangeEvent[] = []
      const nodes = racers.map((db) => {
        const s = supplier({}, { properties: new SecurityPropertyRepository(db) })
        s.on('change', (c: KeyChangeEvent) => changes.push(c))
        return s
      })
      await Promise.all(nodes.map((s) => s.start()))
      const stored = await properties.get(CLUSTER_KEY_PROPERTY)
      assert.match(stored!, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
      const kid = deriveClusterKey(stored!).kidHex
      for (const s of nodes) {
        assert.equal(s.mode, 'enabled')
        assert.equal(s.current()?.kidHex, kid)
      }
      assert.equal(changes.length, 6)
      assert.equal(changes.filter((c) => c.generated).length, 1, 'exactly one node generated the key')
    })

    test('deleting the row: a new key at the next read, the old one accepted for the grace and refused after', async () => {
      const clock = fakeClock()
      const { log, lines } = capturingLogger()
      const s = supplier({}, { clock, log })
      await s.start()
      const oldKey = s.current()!
      await properties.delete(CLUSTER_KEY_PROPERTY)
      await s.refresh()
      const newKey = s.current()!
      assert.notEqual(newKey.kidHex, oldKey.kidHex)
      assert.equal(deriveClusterKey((await properties.get(CLUSTER_KEY_PROPERTY))!).kidHex, newKey.kidHex)
      assert.ok(s.accepted(oldKey.kid), 'within grace')
      assert.deepEqual(s.state().previousKid, oldKey.kidHex)
      clock.advance(150_000)
      assert.equal(s.accepted(oldKey.kid), undefined, 'after grace')
      assert.ok(s.accepted(newKey.kid))
      assert.ok(lines.some((l) => l['msg'] === 'generated a new cluster key' && l['previousKid'] === oldKey.kidHex))
      assert.ok(!JSON.stringify(lines).includes((await properties.get(CLUSTER_KEY_PROPERTY))!), 'the key itself is never logged')
    })

    test('polling finds a deleted row without being asked (a short poll stands in for the minute)', async () => {
      const s = supplier({ pollIntervalMs: 40, graceMs: 40 })
      await s.start()
      const before = s.current()!.kidHex
      await properties.delete(CLUSTER_KEY_PROPERTY)
      for (let i = 0; i < 100 && s.current()?.kidHex === before; i++) await new Promise((r) => setTimeout(r, 10))
      assert.notEqual(s.current()?.kidHex, before)
      await s.close()
    })

    test('an empty value disables at run time with a WARN at most once per interval; deleting the row re-enables', async () => {
      const clock = fakeClock()
      const { log, lines } = capturingLogger()
      const s = supplier({ warnIntervalMs: 60_000 }, { clock, log })
      await s.start()
      await properties.set(CLUSTER_KEY_PROPERTY, '')
      await s.refresh()
      assert.equal(s.mode, 'disabled-at-run-time')
      assert.equal(s.current(), undefined)
      const warnings = (): Array<Record<string, unknown>> => lines.filter((l) => l['level'] === 40)
      assert.equal(warnings().length, 1)
      for (let i = 0; i < 5; i++) s.authSkipped()
      await s.refresh()
      assert.equal(warnings().length, 1, 'rate-limited')
      clock.advance(59_999)
      s.authSkipped()
      assert.equal(warnings().length, 1)
      clock.advance(1)
      s.authSkipped()
      assert.equal(warnings().length, 2)
      assert.deepEqual([warnings()[1]!['warningCounter'], warnings()[1]!['suppressedSinceLastWarning']], [2, 7])
      assert.match(String(warnings()[0]!['msg']), /cluster authentication disabled/)

      await properties.delete(CLUSTER_KEY_PROPERTY)
      await s.refresh()
      assert.equal(s.mode, 'enabled')
      assert.equal(s.state().previousKid, null, 'no grace from "disabled" to a key')
    })

    test('a failed read keeps the keys: losing the database never switches authentication off', async () => {
      const own = await target.open()
      const s = supplier({}, { properties: new SecurityPropertyRepository(own) })
      await s.start()
      const kid = s.current()!.kidHex
      await own.close()
      await assert.rejects(s.refresh())
      assert.equal(s.mode, 'enabled')
      assert.equal(s.current()?.kidHex, kid)
    })

    test('on-demand refreshes are coalesced and spaced', async () => {
      const counting = new CountingProperties(database)
      const s = supplier({ refreshMinIntervalMs: 300 }, { properties: counting })
      await s.start()
      const afterStart = counting.reads
      for (let i = 0; i < 20; i++) s.peerSuggestsKeyChange()
      await new Promise((r) => setTimeout(r, 100))
      assert.equal(counting.reads, afterStart, 'nothing within the spacing')
      for (let i = 0; i < 100 && counting.reads === afterStart; i++) await new Promise((r) => setTimeout(r, 20))
      await new Promise((r) => setTimeout(r, 50))
      assert.equal(counting.reads, afterStart + 1, 'twenty hints, one trailing read')
    })

    test('read-only (the probe): a missing row is an error and nothing is generated', async () => {
      await properties.delete(CLUSTER_KEY_PROPERTY)
      const s = supplier({ generate: false })
      await assert.rejects(s.start(), { code: 'TUN_ERR_CLUSTER_KEY_UNAVAILABLE' })
      assert.equal(await properties.get(CLUSTER_KEY_PROPERTY), undefined)
    })

    test('disabled at start: the database is never read, and one WARN says so', async () => {
      const { log, lines } = capturingLogger()
      const failing = new (class extends SecurityPropertyRepository {
        override get(): Promise<string | undefined> {
          throw new Error('must not be read')
        }
      })(database)
      const s = supplier({ disabledAtStart: true }, { properties: failing, log })
      await s.start()
      await s.refresh()
      s.requestRefresh()
      assert.equal(s.mode, 'disabled-at-start')
      assert.deepEqual(lines.map((l) => [l['level'], l['flag']]), [[40, '--cluster-auth-disabled']])
    })
  })
}
