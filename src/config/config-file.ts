import { readFile } from 'node:fs/promises'
import { invalidConfigFile } from './config-issues.ts'
import type { ConfigFile, ConfigSide } from './config-yaml.ts'

export type { SourcedIssue } from './config-issues.ts'
export type { ConfigFile, ConfigSide, FileOptions } from './config-yaml.ts'

export const CONFIG_SIDES: readonly ConfigSide[] = ['server', 'agent']

/** Reads and parses a YAML or JSON configuration file (JSON is read as the YAML subset it is). */
export async function readConfigFile(path: string): Promise<ConfigFile> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message
    throw invalidConfigFile([{ field: 'config', message: `cannot read ${path}: ${why}${err.code ? ` (${err.code})` : ''}`, source: 'flag --config' }])
  })
  // The YAML parser (about half a MiB of heap) is loaded only by a process that reads a file.
  const { parseConfigText } = await import('./config-yaml.ts')
  return parseConfigText(text, path)
}
