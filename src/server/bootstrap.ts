import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ApiTokenRepository, OrgRepository } from '../store/index.ts'
import { hashApiToken, newApiToken } from './admin-api/api-token-service.ts'

export const ADMIN_TOKEN_FILE = 'admin-token'
export const SERVER_INFO_FILE = 'server.json'

/**
 * First start: one org and a bootstrap admin API token. The database keeps only the token's hash;
 * the token itself is written once, 0600, into the data directory for local administration.
 */
export async function bootstrapOrg(
  deps: { orgs: OrgRepository; tokens: ApiTokenRepository },
  options: { dataDir: string; orgName: string },
): Promise<{ orgId: string; orgName: string; createdToken: boolean }> {
  const existing = await deps.orgs.first()
  if (existing !== undefined) return { orgId: existing.id, orgName: existing.name, createdToken: false }
  const org = await deps.orgs.create({ id: randomUUID(), name: options.orgName })
  const token = newApiToken()
  await deps.tokens.create({ id: randomUUID(), orgId: org.id, name: 'bootstrap-admin', tokenHash: hashApiToken(token) })
  await writeFile(join(options.dataDir, ADMIN_TOKEN_FILE), token + '\n', { mode: 0o600 })
  return { orgId: org.id, orgName: org.name, createdToken: true }
}
