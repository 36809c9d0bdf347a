import { PostgresDialect, sql, type DatabaseIntrospector, type DatabaseMetadata, type Kysely, type PostgresDialectConfig, type SchemaMetadata, type TableMetadata } from 'kysely'

interface ColumnRow {
  table: string
  table_type: string
  column: string
  not_null: boolean
  has_default: boolean
  identity: string
  type: string
  type_schema: string
  column_description: string | null
}

/**
 * The tables of one schema only (the named one, else the current one). Kysely's own introspector,
 * which its migrator asks whether its bookkeeping tables exist, reads every schema of the database
 * and calls `has_schema_privilege(name)` and `pg_get_serial_sequence(name)` on each: both look the
 * name up again outside the query's snapshot, so a schema that another instance (or test) drops
 * meanwhile fails this start with `schema "…" does not exist`. Here every lookup goes by oid
 * within the one schema, so what happens in other schemas cannot fail it.
 */
export class SchemaScopedPostgresIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<any>
  readonly #schema: string | null

  constructor(db: Kysely<any>, schema: string | undefined) {
    this.#db = db
    this.#schema = schema ?? null
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select nspname as name from pg_catalog.pg_namespace`.execute(this.#db)
    return rows.map((r) => ({ name: r.name }))
  }

  async getTables(options: { withInternalKyselyTables?: boolean } = {}): Promise<TableMetadata[]> {
    const { rows } = await sql<ColumnRow & { schema: string }>`
      select c.relname as "table", c.relkind as table_type, ns.nspname as "schema",
             a.attname as "column", a.attnotnull as not_null, a.atthasdef as has_default,
             a.attidentity as "identity", typ.typname as "type", dtns.nspname as type_schema,
             col_description(a.attrelid, a.attnum) as column_description
        from pg_catalog.pg_namespace ns
        join pg_catalog.pg_class c on c.relnamespace = ns.oid
        join pg_catalog.pg_attribute a on a.attrelid = c.oid
        join pg_catalog.pg_type typ on typ.oid = a.atttypid
        join pg_catalog.pg_namespace dtns on dtns.oid = typ.typnamespace
       where ns.nspname = coalesce(${this.#schema}::text, current_schema())
         and c.relkind in ('r', 'v', 'p')
         and a.attnum >= 0 and not a.attisdropped
       order by c.relname, a.attnum`.execute(this.#db)
    const tables = new Map<string, { name: string; schema: string; isView: boolean; columns: TableMetadata['columns'][number][] }>()
    for (const row of rows) {
      if (!options.withInternalKyselyTables && (row.table === 'kysely_migration' || row.table === 'kysely_migration_lock')) continue
      let table = tables.get(row.table)
      if (table === undefined) {
        table = { name: row.table, schema: row.schema, isView: row.table_type === 'v', columns: [] }
        tables.set(row.table, table)
      }
      table.columns.push({
        name: row.column,
        dataType: row.type,
        dataTypeSchema: row.type_schema,
        isNullable: !row.not_null,
        hasDefaultValue: row.has_default,
        isAutoIncrementing: row.identity !== '',
        ...(row.column_description === null ? {} : { comment: row.column_description }),
      })
    }
    return [...tables.values()]
  }

  async getMetadata(options?: { withInternalKyselyTables?: boolean }): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) }
  }
}

/** PostgreSQL, introspected through SchemaScopedPostgresIntrospector. */
export class SchemaScopedPostgresDialect extends PostgresDialect {
  readonly #schema: string | undefined

  constructor(config: PostgresDialectConfig, schema: string | undefined) {
    super(config)
    this.#schema = schema
  }

  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SchemaScopedPostgresIntrospector(db, this.#schema)
  }
}
