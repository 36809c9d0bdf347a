import { randomUUID } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ConsoleUserRepository } from '../store/index.ts'
import { generatePassword, hashPassword, type ScryptParams } from './password-hash.ts'

export const CONSOLE_PASSWORD_FILE = 'console-admin-password'
export const BOOTSTRAP_USERNAME = 'admin'

/**
 * First start of a console with no user: creates `admin` with a random password, written once
 * (0600) to `<dataDir>/console-admin-password`. The file is written before the user row so a crash
 * in between can never leave an admin whose password nobody has; when another node of the same
 * database wins the race, our file is removed again. Returns the file when this call created it.
 */
export async function ensureBootstrapAdmin(
  users: ConsoleUserRepository,
  options: { orgId: string | null; dataDir: string; params?: ScryptParams },
): Promise<{ file: string } | undefined> {
  if ((await users.count()) > 0) return undefined
  const password = generatePassword()
  const file = join(options.dataDir, CONSOLE_PASSWORD_FILE)
  await rm(file, { force: true })
  await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' })
  const created = await users.createIfAbsent({
    id: randomUUID(),
    orgId: options.orgId,
    username: BOOTSTRAP_USERNAME,
    passwordHash: await hashPassword(password, options.params),
  })
  if (!created) {
    await rm(file, { force: true })
    return undefined
  }
  return { file }
}
