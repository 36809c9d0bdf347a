import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

test('the YAML parser is loaded only once a configuration file is read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'config-file-'))
  try {
    const file = join(dir, 'agent.yaml')
    writeFileSync(file, 'upstream: 127.0.0.1:1\n')
    // In a fresh process, with the modules a server or agent loads to read its configuration:
    // yaml is a CommonJS package, so once loaded it is in the require cache.
    const script = `
      import { createRequire } from 'node:module'
      const cache = createRequire(import.meta.url).cache
      const yamlLoaded = () => Object.keys(cache).some((k) => k.includes('/node_modules/yaml/'))
      await import(${JSON.stringify(new URL('./config-sources.ts', import.meta.url).href)})
      const { readConfigFile } = await import(${JSON.stringify(new URL('./config-file.ts', import.meta.url).href)})
      const before = yamlLoaded()
      const read = await readConfigFile(${JSON.stringify(file)})
      process.stdout.write(JSON.stringify({ before, after: yamlLoaded(), kind: read.kind }))
    `
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
    assert.deepEqual(JSON.parse(out), { before: false, after: true, kind: 'flat' })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
