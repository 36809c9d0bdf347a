import { CompiledQuery, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type SqliteDialectConfig } from 'kysely'

/**
 * Kysely's SQLite dialect, except that a transaction starts with BEGIN IMMEDIATE. Kysely begins
 * with a plain (deferred) BEGIN: the transaction reads from a snapshot and asks for the write lock
 * only at its first write. When another process (a replica or a worker on the same file) committed
 * in between, SQLite refuses that write with SQLITE_BUSY_SNAPSHOT at once, and the busy timeout
 * does not apply, since waiting would not make the snapshot current. BEGIN IMMEDIATE takes the
 * write lock first, waiting out the busy timeout like any write, so a transaction that writes never
 * reads a snapshot another writer can overtake.
 */
export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig

  constructor(config: SqliteDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config)
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}
