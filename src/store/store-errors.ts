import { dirname } from 'node:path'
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely'
import { TunnelError, isTunnelError } from '../errors/index.ts'

/** What a store error message names: the SQLite file, or the PostgreSQL server (never its URL: it may carry a password). */
export type StoreLocation = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; address: string }

// SQLite's primary result codes, as better-sqlite3 spells them; extended codes start with these.
const SQLITE_FULL = 'SQLITE_FULL'
const SQLITE_CORRUPT = /^SQLITE_(CORRUPT|NOTADB)/
// PostgreSQL SQLSTATEs: disk_full, data_corrupted, index_corrupted.
const PG_DISK_FULL = '53100'
const PG_CORRUPT = new Set(['XX001', 'XX002'])

/**
 * The store's own error for a driver failure an operator must act on (no space, damaged file),
 * or the error itself. Anything else passes through unchanged: a constraint violation is the
 * repository's to interpret.
 */
export function translateStoreError(err: unknown, where: StoreLocation): unknown {
  if (isTunnelError(err) || typeof err !== 'object' || err === null) return err
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string') return err
  const reason = err instanceof Error ? err.message : code
  if (where.dialect === 'sqlite') {
    if (code === SQLITE_FULL) return diskFull(where, reason, err)
    if (SQLITE_CORRUPT.test(code)) return corrupt(where, reason, err)
    return err
  }
  if (code === PG_DISK_FULL) return diskFull(where, reason, err)
  if (PG_CORRUPT.has(code)) return corrupt(where, reason, err)
  return err
}

export function diskFull(where: StoreLocation, reason: string, cause?: unknown): TunnelError {
  const message =
    where.dialect === 'sqlite'
      ? `no space left for the SQLite database ${where.file} (${reason}): free space on the disk holding ${dirname(where.file)}, then retry`
      : `PostgreSQL at ${where.address} has no space left (${reason}): free space on the database server's disk, then retry`
  return new TunnelError('TUN_ERR_STORE_DISK_FULL', message, { cause })
}

export function corrupt(where: StoreLocation, reason: string, cause?: unknown): TunnelError {
  const message =
    where.dialect === 'sqlite'
      ? `the SQLite database ${where.file} is damaged (${reason}): stop every node that uses it and restore the file from a backup`
      : `PostgreSQL at ${where.address} reports damaged data (${reason}): restore the database from a backup`
  return new TunnelError('TUN_ERR_STORE_CORRUPT', message, { cause })
}

/**
 * `inner` with every driver failure passed through translateStoreError, so a full disk or a damaged
 * page reaches the API, the CLI and the logs as a store code naming where, from any repository,
 * instead of an internal error. `inTransaction` tells whether the connection is still in a
 * transaction (SQLite: one connection).
 */
export function translatingDialect(inner: Dialect, where: StoreLocation, inTransaction?: () => boolean): Dialect {
  return {
    createDriver: () => new TranslatingDriver(inner.createDriver(), where, inTransaction),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createAdapter: () => inner.createAdapter(),
    createIntrospector: (db) => inner.createIntrospector(db),
  }
}

class TranslatingDriver implements Driver {
  readonly #inner: Driver
  readonly #where: StoreLocation
  readonly #inTransaction: (() => boolean) | undefined
  // The inner driver's methods expect its own connection objects, so each wrapper maps back to one.
  readonly #connections = new WeakMap<DatabaseConnection, DatabaseConnection>()

  constructor(inner: Driver, where: StoreLocation, inTransaction: (() => boolean) | undefined) {
    this.#inner = inner
    this.#where = where
    this.#inTransaction = inTransaction
  }

  // Awaited inside try: SQLite's driver throws synchronously rather than rejecting.
  async #guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      throw translateStoreError(err, this.#where)
    }
  }

  #unwrap(connection: DatabaseConnection): DatabaseConnection {
    return this.#connections.get(connection) ?? connection
  }

  init(): Promise<void> {
    return this.#guard(() => this.#inner.init())
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await this.#guard(() => this.#inner.acquireConnection())
    const guard = <T>(run: () => Promise<T>): Promise<T> => this.#guard(run)
    const where = this.#where
    const wrapper: DatabaseConnection = {
      executeQuery: <R>(query: CompiledQuery): Promise<QueryResult<R>> => guard(() => inner.executeQuery<R>(query)),
      async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
        try {
          yield* inner.streamQuery<R>(query, chunkSize)
        } catch (err) {
          throw translateStoreError(err, where)
        }
      },
    }
    this.#connections.set(wrapper, inner)
    return wrapper
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#guard(() => this.#inner.beginTransaction(this.#unwrap(connection), settings))
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#guard(() => this.#inner.commitTransaction(this.#unwrap(connection)))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // SQLite rolls a transaction back itself on some errors (a full disk among them). Kysely's
    // ROLLBACK would then fail with "no transaction is active", and that error would replace the
    // one that says what happened.
    if (this.#inTransaction?.() === false) return
    return this.#guard(() => this.#inner.rollbackTransaction(this.#unwrap(connection)))
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]): Promise<void> {
    return this.#guard(() => this.#inner.savepoint!(this.#unwrap(connection), name, compile))
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['rollbackToSavepoint']>>[2]): Promise<void> {
    return this.#guard(() => this.#inner.rollbackToSavepoint!(this.#unwrap(connection), name, compile))
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['releaseSavepoint']>>[2]): Promise<void> {
    return this.#guard(() => this.#inner.releaseSavepoint!(this.#unwrap(connection), name, compile))
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(this.#unwrap(connection))
  }

  destroy(): Promise<void> {
    return this.#inner.destroy()
  }
}
