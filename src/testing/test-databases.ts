import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { openDatabase, type Database } from '../store/index.ts'

/** One database a test file can run its suite against. */
export interface DatabaseTarget {
  readonly name: 'sqlite' | 'postgres'
  /** Why the suite must be skipped on this target, for `describe(..., { skip })`; false to run it. */
  readonly skip: string | false
  /** Opens this test file's database (migrated); every call reaches the same data. The caller closes it. */
  open(): Promise<Database>
  /** What a process given `--database` reaches the same data with (a file path, or a URL naming the schema). */
  url(): Promise<string>
  /** Removes what the target created (temp directory, schema). Call once, after closing every handle. */
  dispose(): Promise<void>
}

const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const PROBE_TIMEOUT_MS = 2_000

let probe: Promise<string | undefined> | undefined

/**
 * SQLite always, PostgreSQL when `APPTUNNEL_TEST_PG` (or the local default) answers. An unreachable
 * PostgreSQL skips loudly, unless `APPTUNNEL_REQUIRE_PG=1` makes it a failure (CI sets it so a broken
 * service cannot pass as green).
 */
export async function databaseTargets(): Promise<DatabaseTarget[]> {
  const url = process.env['APPTUNNEL_TEST_PG'] || DEFAULT_PG_URL
  const required = process.env['APPTUNNEL_REQUIRE_PG'] === '1'
  probe ??= probePostgres(url).then((unreachable) => {
    if (unreachable !== undefined) {
      const outcome = required ? 'APPTUNNEL_REQUIRE_PG=1, so PostgreSQL tests FAIL' : 'PostgreSQL tests SKIPPED'
      process.stderr.write(`!!! ${unreachable} — ${outcome}\n`)
    }
    return unreachable
  })
  const unreachable = await probe
  return [sqliteTarget(), postgresTarget(url, unreachable, required)]
}

function sqliteTarget(): DatabaseTarget {
  let dir: Promise<string> | undefined
  return {
    name: 'sqlite',
    skip: false,
    async open() {
      dir ??= mkdtemp(join(tmpdir(), 'apptunnel-store-'))
      return openDatabase(join(await dir, 'store.sqlite'))
    },
    async url() {
      dir ??= mkdtemp(join(tmpdir(), 'apptunnel-store-'))
      return join(await dir, 'store.sqlite')
    },
    async dispose() {
      if (dir !== undefined) await rm(await dir, { recursive: true, force: true })
    },
  }
}

function postgresTarget(url: string, unreachable: string | undefined, required: boolean): DatabaseTarget {
  // Each test file gets its own schema, so files running in parallel never see each other's rows.
  const schema = `t_${randomBytes(6).toString('hex')}`
  let used = false
  return {
    name: 'postgres',
    skip: unreachable !== undefined && !required ? unreachable : false,
    async open() {
      if (unreachable !== undefined) throw new Error(`APPTUNNEL_REQUIRE_PG=1 but ${unreachable}`)
      used = true
      return openDatabase(url, { schema })
    },
    async url() {
      if (unreachable !== undefined) throw new Error(`APPTUNNEL_REQUIRE_PG=1 but ${unreachable}`)
      used = true
      const withSchema = new URL(url)
      withSchema.searchParams.set('schema', schema)
      return withSchema.toString()
    },
    async dispose() {
      if (!used) return
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS })
      await client.connect()
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      } finally {
        await client.end()
      }
    },
  }
}

/** Resolves to a reason when PostgreSQL does not answer, undefined when it does. */
async function probePostgres(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS })
  // A failed connect can still emit 'error' later; unhandled, it would crash the test process.
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('select 1')
    return undefined
  } catch (err) {
    return `PostgreSQL not reachable at ${hostOf(url)} (${reasonOf(err)})`
  } finally {
    await client.end().catch(() => {})
  }
}

// The URL may carry a password: only host and port are printed.
function hostOf(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || '5432'}`
  } catch {
    return '(unparseable APPTUNNEL_TEST_PG)'
  }
}

function reasonOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return reasonOf(err.errors[0])
  if (err instanceof Error) return err.message || String((err as { code?: unknown }).code ?? err.name)
  return String(err)
}
