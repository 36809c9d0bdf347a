// Runs every *.test.ts under src/, e2e/, bench/ and scripts/ with Node's built-in test runner through tsx.
// Node 20's `--test` does not expand globs, so the file list is built here.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) collect(p, out)
    else if (name.endsWith('.test.ts')) out.push(p)
  }
  return out
}

const only = process.argv.slice(2)
const files = only.length > 0 ? only : [...collect('src', []), ...collect('e2e', []), ...collect('bench', []), ...collect('scripts', [])].sort()
// Node 23 and later print the spec report even into a pipe; TAP there keeps a log (and its closing
// `# pass N` / `# fail N`) the same under every supported Node line.
const reporter = process.stdout.isTTY ? [] : ['--test-reporter=tap']
const res = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', ...reporter, '--test-concurrency=2', '--test-timeout=120000', ...files],
  { stdio: 'inherit' },
)
process.exit(res.status ?? 1)
