import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { chmod, cp, mkdir, mkdtemp, rm, symlink, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CLI } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'

checkNoLeakedHandles()

const ROOT = new URL('..', import.meta.url).pathname
const NOBODY = 65534
const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups']

/** Why these tests cannot run here (they switch to an unprivileged user), or false. */
function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'not root: cannot run the CLI as another user'
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'setpriv (util-linux) is missing'
  // The copies use this checkout's node_modules, which that user must be able to read.
  if (spawnSync(asNobody[0]!, [...asNobody.slice(1), 'test', '-r', join(ROOT, 'node_modules', 'better-sqlite3', 'package.json')]).status !== 0) {
    return `uid ${NOBODY} cannot read ${join(ROOT, 'node_modules')}`
  }
  return false
}

const skip = skipReason()
if (skip !== false) console.log(`#\n# installed-copy tests SKIPPED: ${skip}\n#`)

/** Runs the CLI of a copy as uid 65534 from `/`, with HOME and TMPDIR in a directory it owns. */
function runAsNobody(bin: string, args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      asNobody[0]!,
      [...asNobody.slice(1), process.execPath, bin, ...args],
      { cwd: '/', env: { PATH: process.env.PATH ?? '', HOME: home, TMPDIR: home }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }),
    )
  })
}

describe('a read-only copy run by an unprivileged user', { skip }, () => {
  let work: string
  let home: string

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'apptunnel-copy-'))
    await chmod(work, 0o755)
    home = join(work, 'home')
    await mkdir(home)
    spawnSync('chown', [`${NOBODY}:${NOBODY}`, home])
    // The bundle as this checkout's sources make it (the CLI rebuilds it when one is newer).
    assert.equal(spawnSync(process.execPath, [CLI, '--version']).status, 0)
  })

  after(async () => {
    spawnSync('chmod', ['-R', 'u+w', work])
    await rm(work, { recursive: true, force: true })
  })

  async function copy(name: string, entries: string[]): Promise<string> {
    const dir = join(work, name)
    for (const e of entries) await cp(join(ROOT, e), join(dir, e), { recursive: true })
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
    return dir
  }

  test('the files of the package (npm pack) run read-only: --help and the demo', async () => {
    const list = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false', npm_config_audit: 'false' },
    })
    assert.equal(list.status, 0, list.stderr)
    const files = (JSON.parse(list.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path)
    assert.deepEqual(files.filter((f) => f.endsWith('.ts') || /^(e2e|bench|scripts|\.ci)\//.test(f)), [])
    assert.ok(files.includes('dist/apptunnel.mjs') && files.includes('bin/apptunnel.js'), `no bundle in the package: ${files.join(' ')}`)
    const dir = await copy('installed', files)
    spawnSync('chmod', ['-R', 'a-w', dir])

    const help = await runAsNobody(join(dir, 'bin', 'apptunnel.js'), ['--help'], home)
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /Usage: apptunnel/)
    const demo = await runAsNobody(join(dir, 'bin', 'apptunnel.js'), ['demo', '--check'], home)
    assert.equal(demo.code, 0, demo.stderr)
    assert.match(demo.stdout, /HTTP 200 through the tunnel/)
  })

  test('a read-only checkout without a bundle says in one line how to build it', async () => {
    const dir = await copy('checkout', ['bin', 'scripts', 'src', 'package.json'])
    spawnSync('chmod', ['-R', 'a-w', dir])
    const r = await runAsNobody(join(dir, 'bin', 'apptunnel.js'), ['--help'], home)
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /^apptunnel: no bundle in .*dist and .* is not writable \(EACCES\): run `npm install`/)
  })

  test('a read-only checkout whose bundle is older than a source runs that bundle', async () => {
    const dir = await copy('stale', ['bin', 'scripts', 'src', 'dist', 'package.json'])
    const later = new Date(Date.now() + 60_000)
    await utimes(join(dir, 'src', 'cli', 'main.ts'), later, later)
    spawnSync('chmod', ['-R', 'a-w', dir])
    const r = await runAsNobody(join(dir, 'bin', 'apptunnel.js'), ['--version'], home)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/)
    assert.match(r.stderr, /^apptunnel: running the bundle in dist\/, older than src\/: .* is not writable/)
  })
})
