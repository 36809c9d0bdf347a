import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import { Kysely, Migrator, sql, type Migration, type MigrationProvider } from 'kysely'
import { TunnelError, isTunnelError } from '../errors/index.ts'
import { ImmediateSqliteDialect } from './immediate-sqlite-dialect.ts'
import { migrationProvider } from './migrations/index.ts'
import { SchemaScopedPostgresDialect } from './postgres-introspector.ts'
import type { StoreSchema } from './schema.ts'
import type { StoreDialect } from './store-dialect.ts'
import { corrupt, translateStoreError, translatingDialect, type StoreLocation } from './store-errors.ts'

export interface Database {
  readonly db: Kysely<StoreSchema>
  readonly dialect: StoreDialect
  /** Runs a trivial query: resolves when the database answers, rejects with the driver's error (readiness checks). */
  ping(): Promise<void>
  /** the migrations this open applied, in order (empty when the schema was already current) */
  readonly migrated: readonly string[]
  /** Releases the pool or file handle; safe to call more than once. */
  close(): Promise<void>
}

/** A migration about to run: the `index`-th (from 1) of the `total` this open applies. */
export interface MigrationStep {
  name: string
  index: number
  total: number
}

export interface OpenDatabaseOptions {
  /** PostgreSQL only: keep every table in this schema (created if missing). Tests use it for isolation. */
  schema?: string | undefined
  /** told before each migration runs (progress on a terminal) */
  onMigration?: ((step: MigrationStep) => void) | undefined
}

const POOL_SIZE = 10
// How long a SQLite statement waits for another process's write lock before SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT_MS = 5_000
// How often a SQLite lock SQLite does not wait for itself is tried again.
const SQLITE_BUSY_RETRY_MS = 10
// How long a node starting next to another waits for that one's migrations to finish: far longer
// than any statement, since a migration may rewrite a large table.
const SQLITE_MIGRATION_LOCK_TIMEOUT_MS = 120_000
// Bounds both the first connect and the wait for a free pooled connection, so a dead server
// surfaces as an error instead of a request that hangs forever.
const PG_CONNECT_TIMEOUT_MS = 10_000
// Unquoted PostgreSQL identifiers fold to lower case, so only lower case is accepted: the name we
// quote in DDL and the one in search_path can then never disagree.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/**
 * Opens the store named by `target` — a `postgres://` / `postgresql://` URL, or otherwise a SQLite
 * file path (`:memory:` allowed) — and brings its schema up to date before returning.
 */
export async function openDatabase(target: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  if (target.trim() === '') {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', 'the database target is empty')
  }
  if (/^postgres(ql)?:\/\//i.test(target)) {
    const { url, schema } = splitSchemaParameter(target, options.schema)
    const database = await openPostgres(url, schema)
    return { ...database, migrated: await migrate(database, schema, options.onMigration) }
  }
  const database = await openSqlite(target, options.schema)
  return { ...database, migrated: await migrate(database, options.schema, options.onMigration) }
}

/**
 * `postgres://…?schema=NAME` keeps every table in that schema: one PostgreSQL database can then hold
 * several instances (or a tunnel server and an instance) side by side. The parameter is ours, so it
 * is taken off before the URL reaches the driver; an explicit option wins over it.
 */
function splitSchemaParameter(target: string, explicit: string | undefined): { url: string; schema: string | undefined } {
  let parsed: URL
  try {
    parsed = new URL(target)
  } catch {
    return { url: target, schema: explicit }
  }
  const fromUrl = parsed.searchParams.get('schema')
  if (fromUrl === null) return { url: target, schema: explicit }
  parsed.searchParams.delete('schema')
  return { url: parsed.toString(), schema: explicit ?? fromUrl }
}

type OpenedDatabase = Omit<Database, 'migrated'>

async function openSqlite(path: string, schema: string | undefined): Promise<OpenedDatabase> {
  if (schema !== undefined) {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', 'a database schema can only be chosen for PostgreSQL')
  }
  // Each driver is loaded only when its dialect is used: a SQLite server never pays for pg.
  const { default: BetterSqlite3Ctor } = await import('better-sqlite3')
  const where: StoreLocation = { dialect: 'sqlite', file: path === ':memory:' ? path : resolve(path) }
  let file: BetterSqlite3.Database | undefined
  try {
    if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true })
    // The busy timeout is given at open, before the first pragma: nodes starting together on a
    // fresh file contend already for the switch to WAL.
    file = new BetterSqlite3Ctor(path, { timeout: SQLITE_BUSY_TIMEOUT_MS })
    await useWal(file)
    file.pragma('foreign_keys = ON')
    if (path !== ':memory:') checkPages(file, where)
  } catch (err) {
    file?.close()
    const translated = translateStoreError(err, where)
    if (isTunnelError(translated)) throw translated
    throw new TunnelError('TUN_ERR_STORE_UNREACHABLE', `cannot open SQLite database at ${path}: ${reasonOf(err)}`, {
      cause: err,
    })
  }
  const opened = file
  return wrap(new Kysely<StoreSchema>({ dialect: translatingDialect(new ImmediateSqliteDialect({ database: opened }), where, () => opened.inTransaction) }), 'sqlite')
}

/**
 * Switches the file to WAL (a setting kept in the file, so only its first opener changes it).
 * SQLite answers SQLITE_BUSY to that switch at once, without waiting out the busy timeout, while
 * another process holds the file; nodes started together on a fresh file hit it. So the switch is
 * retried, for as long as the busy timeout, until it succeeds or another process has made it.
 */
async function useWal(file: BetterSqlite3.Database): Promise<void> {
  await whileBusy(() => {
    if (file.pragma('journal_mode', { simple: true }) !== 'wal') file.pragma('journal_mode = WAL')
  }, SQLITE_BUSY_TIMEOUT_MS)
}

/** Runs `attempt` until it does not fail with SQLITE_BUSY, for up to `timeoutMs`, without blocking the event loop. */
async function whileBusy<T>(attempt: () => T | Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await attempt()
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, SQLITE_BUSY_RETRY_MS))
    }
  }
}

/**
 * A damaged page would otherwise surface only when some later request happens to read it, as an
 * internal error. quick_check reads every page once (about 0.3 s per 100 MB from the page cache,
 * 3 s from disk): cheap next to serving from a damaged file, and it runs before anything is served.
 */
function checkPages(file: BetterSqlite3.Database, where: StoreLocation): void {
  const rows = file.pragma('quick_check(5)') as Array<{ quick_check: string }>
  const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok')
  if (problems.length > 0) throw corrupt(where, `quick_check: ${problems.join('; ')}`)
}

async function openPostgres(url: string, schema: string | undefined): Promise<OpenedDatabase> {
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', `database schema "${schema}" is not a plain lower-case identifier`)
  }
  const address = postgresAddress(url)
  const where: StoreLocation = { dialect: 'postgres', address }
  const { default: pgDriver } = await import('pg')
  const pool = new pgDriver.Pool({
    connectionString: url,
    max: POOL_SIZE,
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    // A startup parameter applies to every connection the pool ever opens, which a one-off
    // `SET search_path` on a single connection would not.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  })
  // An idle pooled connection that the server drops emits 'error' on the pool; without a listener
  // Node would crash the process. The pool already discards that connection and the next query
  // opens a fresh one, so there is nothing more to do here.
  pool.on('error', () => {})

  try {
    const client = await pool.connect()
    try {
      if (schema !== undefined) {
        // Nodes starting together race here: IF NOT EXISTS is not atomic in PostgreSQL, and the
        // loser gets a unique violation although the schema now exists, which is all we want.
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`).catch((err: { code?: string }) => {
          if (err.code !== '23505' && err.code !== '42P06') throw err
        })
      }
    } finally {
      client.release()
    }
  } catch (err) {
    await pool.end().catch(() => {})
    const translated = translateStoreError(err, where)
    if (isTunnelError(translated)) throw translated
    throw new TunnelError('TUN_ERR_STORE_UNREACHABLE', `cannot reach PostgreSQL at ${address}: ${reasonOf(err)}`, {
      cause: err,
    })
  }
  const dialect = translatingDialect(new SchemaScopedPostgresDialect({ pool }, schema), where)
  return wrap(new Kysely<StoreSchema>({ dialect }), 'postgres')
}

function wrap(db: Kysely<StoreSchema>, dialect: StoreDialect): OpenedDatabase {
  let closing: Promise<void> | undefined
  return {
    db,
    dialect,
    async ping() {
      await sql`select 1`.execute(db)
    },
    close() {
      closing ??= db.destroy()
      return closing
    },
  }
}

/** Brings the schema up to date; resolves with the names of the migrations it applied. */
async function migrate(database: OpenedDatabase, schema: string | undefined, onMigration: MigrationStepListener | undefined): Promise<string[]> {
  try {
    // Kysely decides whether its bookkeeping table exists by looking through every schema unless
    // told which one to use; a kysely_migration table in any other schema of the same database
    // would make it skip creating ours. So on PostgreSQL the schema is always spelled out.
    const migrationTableSchema = database.dialect === 'postgres' ? (schema ?? (await currentSchema(database))) : undefined
    if (database.dialect === 'postgres') return await runMigrations(database.db, database.dialect, migrationTableSchema, onMigration)
    // The usual start finds nothing pending and takes no write lock, so it never waits for a node
    // that is busy writing.
    if (!(await hasPendingMigrations(database.db, database.dialect))) return []
    return await database.db.connection().execute((db) => underSqliteWriteLock(db, () => runMigrations(db, database.dialect, undefined, onMigration)))
  } catch (err) {
    await database.close().catch(() => {})
    if (err instanceof TunnelError) throw err
    throw new TunnelError('TUN_ERR_STORE_MIGRATION_FAILED', `database migration failed: ${reasonOf(err)}`, { cause: err })
  }
}

/**
 * Kysely takes no lock on SQLite and runs migrations outside any transaction, so nodes started
 * together on a fresh file each found no tables and all but one failed with `table "org" already
 * exists`. BEGIN IMMEDIATE takes the file's write lock before the migration table is even read:
 * the others wait (for as long as a migration may take, not a statement) and then find it done.
 * Every migration of this open commits or rolls back as one. The wait polls rather than using
 * SQLite's busy timeout, which sleeps inside the call and so blocks the event loop: a second open
 * in the same process would then keep the first from ever finishing and releasing the lock.
 */
async function underSqliteWriteLock<T>(db: Kysely<StoreSchema>, run: () => Promise<T>): Promise<T> {
  await sql`pragma busy_timeout = 0`.execute(db)
  try {
    await whileBusy(() => sql`begin immediate`.execute(db), SQLITE_MIGRATION_LOCK_TIMEOUT_MS)
  } finally {
    await sql.raw(`pragma busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`).execute(db)
  }
  let result: T
  try {
    result = await run()
  } catch (err) {
    // SQLite may already have rolled back (a full disk does); there is nothing left to undo then.
    await sql`rollback`.execute(db).catch(() => {})
    throw err
  }
  await sql`commit`.execute(db)
  return result
}

async function hasPendingMigrations(db: Kysely<StoreSchema>, dialect: StoreDialect): Promise<boolean> {
  const migrations = await new Migrator({ db, provider: migrationProvider(dialect) }).getMigrations()
  return migrations.some((m) => m.executedAt === undefined)
}

async function runMigrations(db: Kysely<StoreSchema>, dialect: StoreDialect, migrationTableSchema: string | undefined, onMigration: MigrationStepListener | undefined): Promise<string[]> {
  const options = { db, ...(migrationTableSchema === undefined ? {} : { migrationTableSchema }) }
  const provider = migrationProvider(dialect)
  const migrator = new Migrator({ ...options, provider: onMigration === undefined ? provider : await announcing(provider, new Migrator({ ...options, provider }), onMigration) })
  const { error, results } = await migrator.migrateToLatest()
  if (error !== undefined) {
    // Out of space or a damaged file says more than "migration failed", and has its own remedy.
    if (isTunnelError(error) && (error.code === 'TUN_ERR_STORE_DISK_FULL' || error.code === 'TUN_ERR_STORE_CORRUPT')) throw error
    const failed = results?.find((r) => r.status === 'Error')?.migrationName
    const where = failed === undefined ? '' : ` (migration ${failed})`
    throw new TunnelError('TUN_ERR_STORE_MIGRATION_FAILED', `database migration failed${where}: ${reasonOf(error)}`, {
      cause: error,
    })
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

type MigrationStepListener = (step: MigrationStep) => void

/**
 * The same migrations, each telling `onMigration` just before it runs. The pending ones are
 * counted first; one that another node applies meanwhile is simply never announced.
 */
async function announcing(provider: MigrationProvider, reader: Migrator, onMigration: MigrationStepListener): Promise<MigrationProvider> {
  const pending = (await reader.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name)
  const all = await provider.getMigrations()
  const wrapped: Record<string, Migration> = {}
  for (const [name, migration] of Object.entries(all)) {
    wrapped[name] = {
      ...migration,
      up: async (db) => {
        const index = pending.indexOf(name)
        if (index >= 0) onMigration({ name, index: index + 1, total: pending.length })
        await migration.up(db)
      },
    }
  }
  return { getMigrations: async () => wrapped }
}

async function currentSchema(database: OpenedDatabase): Promise<string> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(database.db)
  const schema = rows[0]?.schema
  if (schema == null) {
    throw new TunnelError(
      'TUN_ERR_STORE_MIGRATION_FAILED',
      'PostgreSQL has no current schema to create tables in (check search_path)',
    )
  }
  return schema
}

// Only host and port ever reach a message: the URL may carry a password.
function postgresAddress(url: string): string {
  try {
    const parsed = new URL(url)
    const host = parsed.searchParams.get('host') ?? (parsed.hostname || 'localhost')
    return `${host}:${parsed.port || '5432'}`
  } catch {
    return '(unparseable URL)'
  }
}

function reasonOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return reasonOf(err.errors[0])
  if (err instanceof Error) {
    // Node reports some socket failures (ECONNREFUSED to every resolved address) with an empty message.
    const code = (err as { code?: unknown }).code
    return err.message || (typeof code === 'string' ? code : err.name)
  }
  return String(err)
}
