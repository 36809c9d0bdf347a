import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

const NODE_ID_FILE = 'node-id'
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/

/**
 * A server replica's cluster node id: the one given, else the one kept in its data directory
 * (created once as <hostname>-<6 hex>), so a restart comes back as the same node. Agents keep
 * theirs the same way (agent/node-identity.ts) in the same file name.
 */
export async function resolveClusterNodeId(options: { nodeId?: string | undefined; dataDir: string }): Promise<string> {
  if (options.nodeId !== undefined) return options.nodeId
  const file = join(options.dataDir, NODE_ID_FILE)
  try {
    const id = (await readFile(file, 'utf8')).trim()
    if (NODE_ID.test(id)) return id
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const base = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40) || 'node'
  const id = `${base}-${randomBytes(3).toString('hex')}`
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 })
  await writeFile(file, id + '\n', { mode: 0o644 })
  return id
}
