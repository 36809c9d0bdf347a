import type { MigrationProvider } from 'kysely'
import type { StoreDialect } from '../store-dialect.ts'
import { initialMigration } from './0001-initial.ts'
import { clusterMigration } from './0002-cluster.ts'
import { instanceMigration } from './0003-instance.ts'
import { linkedProductMigration } from './0004-linked-products.ts'
import { consoleMigration } from './0005-console.ts'
import { replicasMigration } from './0006-replicas.ts'

/**
 * Every migration, listed in code so a bundled or installed build needs no migration folder on disk.
 * Kysely applies them in key order: keep the zero-padded prefix and never rename a shipped key.
 */
export function migrationProvider(dialect: StoreDialect): MigrationProvider {
  return {
    async getMigrations() {
      return {
        '0001-initial': initialMigration(dialect),
        '0002-cluster': clusterMigration(),
        '0003-instance': instanceMigration(),
        '0004-linked-products': linkedProductMigration(),
        '0005-console': consoleMigration(),
        '0006-replicas': replicasMigration(),
      }
    },
  }
}
