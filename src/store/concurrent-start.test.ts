import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, test } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import pg from 'pg'
import { databaseTargets } from '../testing/test-databases.ts'
import { openDatabase } from './index.ts'
import { migrationProvider } from './migrations/index.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const CHILD = new URL('../testing/open-database-child.ts', import.meta.url).pathname
const PROCESSES = 5
const TRIALS = 10
// Bounds a hung child; never reached when the test passes.
const CHILD_LIMIT_MS = 60_000

type OpenResult = { migrated: string[] } | { code?: string; message: string }

/** `count` processes that have loaded the store and open a database on request. */
async function startOpeners(count: number): Promise<{ openTogether(target: string): Promise<OpenResult[]>; stop(): Promise<void> }> {
  const openers = Array.from({ length: count }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'], timeout: CHILD_LIMIT_MS })
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    const next = async (): Promise<string> => {
      const line = await lines.next()
      if (line.done === true) throw new Error(`an opener exited early (${String(await exited)})`)
      return line.value
    }
    return { child, next, exited }
  })
  for (const opener of openers) assert.equal(await opener.next(), 'ready')
  return {
    async openTogether(target) {
      // All have loaded already, so the opens start within a few milliseconds of each other.
      for (const opener of openers) opener.child.stdin.write(target + '\n')
      return Promise.all(openers.map(async (opener) => JSON.parse(await opener.next()) as OpenResult))
    },
    async stop() {
      for (const opener of openers) opener.child.stdin.end()
      await Promise.all(openers.map((opener) => opener.exited))
    },
  }
}

describe('nodes starting together', () => {
  test(`${PROCESSES} processes opening a fresh SQLite file at once all succeed, and the schema is migrated exactly once (${TRIALS} trials)`, async () => {
    const names = Object.keys(await migrationProvider('sqlite').getMigrations()).sort()
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-concurrent-'))
    const openers = await startOpeners(PROCESSES)
    try {
      const reference = join(dir, 'reference.sqlite')
      await (await openDatabase(reference)).close()
      const tablesOf = (file: string): string[] => {
        const db = new BetterSqlite3(file, { readonly: true })
        try {
          return (db.prepare(`select name from sqlite_master where type = 'table' order by name`).all() as Array<{ name: string }>).map((r) => r.name)
        } finally {
          db.close()
        }
      }
      const expectedTables = tablesOf(reference)

      for (let trial = 1; trial <= TRIALS; trial++) {
        const file = join(dir, `trial-${trial}.sqlite`)
        const results = await openers.openTogether(file)
        const failures = results.filter((r) => !('migrated' in r))
        assert.deepEqual(failures, [], `trial ${trial}: every process opens the database`)
        // Each migration ran in exactly one of them, and the others found it done.
        const applied = results.flatMap((r) => ('migrated' in r ? r.migrated : [])).sort()
        assert.deepEqual(applied, names, `trial ${trial}: each migration applied once`)
        assert.deepEqual(tablesOf(file), expectedTables, `trial ${trial}: the schema is complete`)
        const db = new BetterSqlite3(file, { readonly: true })
        try {
          const recorded = (db.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>).map((r) => r.name)
          assert.deepEqual(recorded, names)
        } finally {
          db.close()
        }
      }
    } finally {
      await openers.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('opens of a fresh SQLite file racing in one process all succeed (the wait for the migration lock leaves the event loop free)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-concurrent-'))
    const file = join(dir, 'store.sqlite')
    try {
      const opened = await Promise.allSettled(Array.from({ length: PROCESSES }, () => openDatabase(file)))
      const databases = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []))
      for (const database of databases) await database.close()
      assert.deepEqual(opened.filter((o) => o.status === 'rejected'), [])
      const names = Object.keys(await migrationProvider('sqlite').getMigrations()).sort()
      assert.deepEqual(databases.flatMap((d) => d.migrated).sort(), names)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

const [, postgres] = await databaseTargets()
const PG_URL = process.env['APPTUNNEL_TEST_PG'] || 'postgres://postgres@127.0.0.1:5432/test'
const OPENS = 15
const CHURNERS = 2

describe('PostgreSQL schemas of other instances', { skip: postgres!.skip }, () => {
  test(`an instance starts while other schemas of the same database are created and dropped (${OPENS} starts)`, async () => {
    // Other instances (or test files) sharing the database come and go: each schema here gets
    // tables and is dropped again, as a test's schema is at its end.
    let stop = false
    const churn = async (): Promise<number> => {
      const client = new pg.Client({ connectionString: PG_URL })
      await client.connect()
      let rounds = 0
      try {
        while (!stop) {
          const schema = `t_churn_${randomBytes(6).toString('hex')}`
          await client.query(`create schema "${schema}"; create table "${schema}".a (id integer generated always as identity primary key, x text); create table "${schema}".b (id text)`)
          await client.query(`drop schema "${schema}" cascade`)
          rounds++
        }
      } finally {
        await client.end()
      }
      return rounds
    }
    const churners = Array.from({ length: CHURNERS }, churn)
    const schemas: string[] = []
    const failures: string[] = []
    try {
      for (let i = 0; i < OPENS; i++) {
        const schema = `t_open_${randomBytes(6).toString('hex')}`
        schemas.push(schema)
        try {
          await (await openDatabase(PG_URL, { schema })).close()
        } catch (err) {
          failures.push((err as Error).message)
        }
      }
    } finally {
      stop = true
      const rounds = await Promise.all(churners)
      const client = new pg.Client({ connectionString: PG_URL })
      await client.connect()
      for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`)
      await client.end()
      assert.ok(rounds.every((n) => n > 0), 'the other schemas came and went meanwhile')
    }
    assert.deepEqual(failures, [])
  })
})
