import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { ServerConfig } from '../config/server-config.ts'
import { TerminalProgress, describeMigration, type Logger, type ProgressOutput } from '../observability/index.ts'
import { ApiTokenRepository, OrgRepository, openDatabase, type Database } from '../store/index.ts'
import { spkiPin } from '../transport/certificate-pin.ts'
import { loadOrCreateCertificate, type CertificateFiles } from '../transport/self-signed-certificate.ts'
import { ADMIN_TOKEN_FILE, bootstrapOrg } from './bootstrap.ts'

export interface ServerStore {
  /** migrated; the caller closes it */
  readonly database: Database
  readonly org: { readonly orgId: string; readonly orgName: string }
  readonly cert: CertificateFiles
  /** the pin agents check, for a self-signed certificate only */
  readonly certificatePin: string | undefined
}

/**
 * What a server has before it builds anything: its data directory, its database (migrated, with
 * the migrations shown on the terminal), its org and bootstrap admin token (first start only) and
 * its TLS certificate (the configured one, else a self-signed one kept in the data directory and
 * made for the names agents dial). Closes the database again when the rest fails.
 */
export async function openServerStore(
  config: Pick<Readonly<ServerConfig>, 'dataDir' | 'database' | 'orgName' | 'publicUrl' | 'tlsCertFile' | 'tlsKeyFile' | 'listen'>,
  deps: { log: Logger; terminal?: ProgressOutput | undefined },
): Promise<ServerStore> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
  const migrating = new TerminalProgress({ out: deps.terminal })
  const database = await openDatabase(config.database, { onMigration: (step) => migrating.update(describeMigration(step)) }).finally(() => migrating.done())
  if (database.migrated.length > 0) deps.log.info({ migrations: database.migrated, database: database.dialect }, 'database migrated')
  try {
    const org = await bootstrapOrg({ orgs: new OrgRepository(database), tokens: new ApiTokenRepository(database) }, { dataDir: config.dataDir, orgName: config.orgName })
    if (org.createdToken) deps.log.info({ file: join(config.dataDir, ADMIN_TOKEN_FILE) }, 'created the bootstrap admin token')
    const publicHint = config.publicUrl === undefined ? [] : [new URL(config.publicUrl).hostname]
    const cert = await loadOrCreateCertificate(
      config.dataDir,
      { certPath: config.tlsCertFile, keyPath: config.tlsKeyFile },
      [config.listen.host, ...publicHint].filter((h) => h !== '0.0.0.0' && h !== '::'),
    )
    return { database, org: { orgId: org.orgId, orgName: org.orgName }, cert, certificatePin: cert.selfSigned ? spkiPin(cert.cert) : undefined }
  } catch (err) {
    await database.close()
    throw err
  }
}
