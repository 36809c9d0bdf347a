import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

const NODE_ID_FILE = 'node-id'

/**
 * A node — an agent, or a server replica on the cluster bus — keeps its id across restarts (in its
 * data directory) so the server and the cluster see the same node come back rather than a new one.
 * Without a data directory the id is fresh each start (<hostname>-<6 hex>).
 */
export async function resolveNodeId(options: { nodeId?: string | undefined; dataDir?: string | undefined }): Promise<string> {
  if (options.nodeId !== undefined) return options.nodeId
  const base = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40) || 'node'
  if (options.dataDir === undefined) return `${base}-${randomBytes(3).toString('hex')}`
  const file = join(options.dataDir, NODE_ID_FILE)
  try {
    const id = (await readFile(file, 'utf8')).trim()
    if (/^[A-Za-z0-9._-]{1,64}$/.test(id)) return id
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = `${base}-${randomBytes(3).toString('hex')}`
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 })
  await writeFile(file, id + '\n', { mode: 0o644 })
  return id
}
