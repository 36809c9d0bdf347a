import { randomUUID } from 'node:crypto'
import { TunnelError } from '../errors/index.ts'
import { ConsoleSessionRepository, ConsoleUserRepository, OrgRepository, type Database } from '../store/index.ts'
import { hashPassword, passwordProblem, type ScryptParams } from './password-hash.ts'

/**
 * Sets a console user's password, creating the user if there is none of that name (in a tunnel
 * server's database it joins the organization; in an instance database, which has none, it is an
 * instance admin), and signs out every browser of that user.
 */
export async function setConsolePassword(database: Database, username: string, password: string, params?: ScryptParams): Promise<{ created: boolean; signedOut: number }> {
  const problem = passwordProblem(password)
  if (problem !== undefined) throw new TunnelError('TUN_ERR_CONSOLE_PASSWORD_INVALID', problem)
  if (!/^[A-Za-z0-9._@-]{1,100}$/.test(username)) throw new TunnelError('TUN_ERR_CLI_USAGE', `user name "${username}" must be 1-100 characters of A-Z a-z 0-9 . _ @ -`)
  const users = new ConsoleUserRepository(database)
  const hash = await hashPassword(password, params)
  const existing = await users.findByUsername(username)
  if (existing !== undefined) {
    await users.setPasswordHash(existing.id, hash)
    return { created: false, signedOut: await new ConsoleSessionRepository(database).deleteForUser(existing.id) }
  }
  const org = await new OrgRepository(database).first()
  await users.createIfAbsent({ id: randomUUID(), orgId: org?.id ?? null, username, passwordHash: hash })
  return { created: true, signedOut: 0 }
}
