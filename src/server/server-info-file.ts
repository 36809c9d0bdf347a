import { access, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BOOTSTRAP_USERNAME, CONSOLE_PASSWORD_FILE } from '../web/bootstrap-admin.ts'
import { ADMIN_TOKEN_FILE, SERVER_INFO_FILE } from './bootstrap.ts'
import { CLOUD_CONSOLE_PATH } from './console/cloud-console.ts'

/** What `server.json` says: where the server listens, as the CLI and scripts read it. */
export interface ServerInfo {
  /** the HTTPS listener as bound */
  url: string
  /** the HTTPS endpoint as agents reach it */
  publicUrl: string
  certificateFile: string
  /** HOST:PORT of the ingress listener */
  ingress: string
}

/**
 * Where a person starts: the cloud console's URL and the files holding the first credentials,
 * each undefined when it is not in this data directory (changed and deleted, or written by the
 * replica that started first). Paths only: the files' contents never leave them.
 */
export interface ServerEntry {
  consoleUrl: string
  consoleUser: string
  consolePasswordFile: string | undefined
  adminTokenFile: string | undefined
}

export async function serverEntry(dataDir: string, publicUrl: string): Promise<ServerEntry> {
  const existing = (file: string) => access(file).then(() => file, () => undefined)
  return {
    consoleUrl: new URL(`${CLOUD_CONSOLE_PATH}/`, publicUrl).href,
    consoleUser: BOOTSTRAP_USERNAME,
    consolePasswordFile: await existing(join(dataDir, CONSOLE_PASSWORD_FILE)),
    adminTokenFile: await existing(join(dataDir, ADMIN_TOKEN_FILE)),
  }
}

/**
 * Writes `server.json` aside and renames it into place: the CLI and scripts poll for this file,
 * and one read between create and write would find it empty.
 */
export async function writeServerInfo(dataDir: string, info: ServerInfo): Promise<string> {
  const file = join(dataDir, SERVER_INFO_FILE)
  const aside = `${file}.${process.pid}.tmp`
  await writeFile(aside, JSON.stringify(info, null, 2) + '\n')
  await rename(aside, file)
  return file
}
