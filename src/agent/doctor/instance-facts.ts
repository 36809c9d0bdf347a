import { access } from 'node:fs/promises'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import { decodeSecurityKey, type SecurityKey } from '../../protocol/index.ts'
import { InstanceKeyRepository, InstanceNodeRepository, openDatabase } from '../../store/index.ts'
import { InstanceAdmin } from '../instance/instance-admin.ts'
import type { InstanceStatusView } from '../instance/instance-status.ts'
import { KeySealer, openStoredKey } from '../instance/key-sealer.ts'

/** What the instance database says, read once before the checks run. */
export interface InstanceFacts {
  /** the stored key, opened and decoded, or why it cannot be used */
  key: { ok: true; key: SecurityKey } | { ok: false; error: TunnelError }
  /** what the server told the first node that connected; null before that */
  applicationLinkUrl: string | null
  status: InstanceStatusView
  /** nodes that recorded a graceful stop (down on purpose, not lost) */
  stoppedNodeIds: ReadonlySet<string>
}

/**
 * Reads the instance's key and nodes. A SQLite path that does not exist is refused rather than
 * opened: opening would create an empty database, and a typo must not look like "no nodes".
 */
export async function readInstanceFacts(target: string, keyEncryptionFile: string | undefined): Promise<InstanceFacts> {
  if (!/^postgres(ql)?:\/\//i.test(target) && target !== ':memory:') {
    await access(target).catch(() => {
      throw new TunnelError('TUN_ERR_STORE_UNREACHABLE', `no instance database at ${target}`)
    })
  }
  const sealer = keyEncryptionFile === undefined ? undefined : await KeySealer.fromFile(keyEncryptionFile)
  const database = await openDatabase(target)
  try {
    const [status, stored, rows] = await Promise.all([
      new InstanceAdmin(database).status(),
      new InstanceKeyRepository(database).get(),
      new InstanceNodeRepository(database).list(),
    ])
    return {
      key: openKey(stored?.securityKey, sealer),
      applicationLinkUrl: stored?.applicationLinkUrl ?? null,
      status,
      stoppedNodeIds: new Set(rows.filter((r) => r.stoppedAt !== null).map((r) => r.nodeId)),
    }
  } finally {
    await database.close()
  }
}

function openKey(stored: string | undefined, sealer: KeySealer | undefined): InstanceFacts['key'] {
  if (stored === undefined) {
    return { ok: false, error: new TunnelError('TUN_ERR_INSTANCE_NO_KEY', 'no security key has been added to this instance database') }
  }
  try {
    return { ok: true, key: decodeSecurityKey(openStoredKey(stored, sealer)) }
  } catch (err) {
    if (isTunnelError(err)) return { ok: false, error: err }
    throw err
  }
}
