import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** What `apptunnel server` writes to `server.json` in its data directory once it listens. */
export interface ServerInfo {
  url: string
  ingress: string
  certificateFile: string
}

/**
 * Waits for a server process started on `dataDir` to write its `server.json`, and reads it. Fails
 * when the process exits first or after `timeoutMs`, with the output so far (`output()`).
 */
export async function waitForServerInfo(
  dataDir: string,
  options: { output?: () => string; exited?: () => boolean; timeoutMs?: number } = {},
): Promise<ServerInfo> {
  const file = join(dataDir, 'server.json')
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  for (;;) {
    // The file is written aside and renamed into place, so a read never sees half of it.
    const info = await readFile(file, 'utf8').then((t) => JSON.parse(t) as ServerInfo, () => undefined)
    if (info !== undefined) return info
    if (options.exited?.() === true) throw new Error(`the server exited before writing ${file}; output:\n${options.output?.() ?? ''}`)
    if (Date.now() > deadline) throw new Error(`${file} did not appear; output so far:\n${options.output?.() ?? ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
