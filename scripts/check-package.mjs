// CI step: the package installed as docs/operations.md says, then run as a service would run it.
// It packs this checkout, runs the Install commands of docs/operations.md (with a temporary prefix
// for /opt/apptunnel), makes the installed copy read-only and, as an unprivileged user from another
// directory, runs `--help`, the demo, and the ExecStart commands of the doc's two systemd units:
// a server, an agent with a key, and an agent node of an instance, with a request through each.
// It is not part of `npm test` because npm fetches the dependencies from the registry (tests only
// ever contact loopback) and compiles better-sqlite3, which takes a minute or two.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const NOBODY = 65534
const STEP_MS = 60_000
const INSTALL_MS = 8 * 60_000

if (process.getuid?.() !== 0) {
  console.log('#'.repeat(78))
  console.log('# SKIPPED: the installed-package check runs as root (it installs into a prefix and')
  console.log('# runs the copy as uid 65534 through setpriv); run it as root, as CI does.')
  console.log('#'.repeat(78))
  process.exit(0)
}

const work = mkdtempSync(join(tmpdir(), 'apptunnel-package-'))
chmodSync(work, 0o755)
const prefix = join(work, 'prefix')
const home = join(work, 'home')
const data = join(work, 'data')
for (const d of [home, data]) {
  mkdirSync(d)
  chownSync(d, NOBODY, NOBODY)
}
const children = []
let failed = false

function fail(message) {
  throw new Error(message)
}

function step(title) {
  console.log(`--- ${title}`)
}

/** Runs a command to completion; throws with its output when it fails. */
function run(cmd, args, { cwd = ROOT, env = process.env, timeout = STEP_MS, asNobody = false, input = '' } = {}) {
  const [file, argv] = asNobody ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args]] : [cmd, args]
  const r = spawnSync(file, argv, { cwd, env, timeout, input, encoding: 'utf8' })
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

function nobodyEnv(extra = {}) {
  return { PATH: process.env.PATH, HOME: home, APPTUNNEL_LOG_FORMAT: 'json', ...extra }
}

/** Starts a long-running command as the unprivileged user; its output is shown if a check fails. */
function start(name, cmd, args, env) {
  const child = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args], { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c) => (output += c))
  child.stderr.on('data', (c) => (output += c))
  const entry = { name, child, output: () => output, exited: new Promise((r) => child.on('exit', (code, signal) => r(code ?? signal))) }
  children.push(entry)
  return entry
}

async function stop(entry) {
  entry.child.kill('SIGTERM')
  const timer = setTimeout(() => entry.child.kill('SIGKILL'), 30_000)
  const result = await entry.exited
  clearTimeout(timer)
  if (result !== 0) fail(`${entry.name} did not exit cleanly on SIGTERM (${result})\n${entry.output()}`)
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function get(port, host) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (err) => resolve({ status: 0, body: err.message }))
    req.end()
  })
}

/** Retries until the tunnel answers 200 with the upstream's body. */
async function expectThroughTunnel(ingressPort, host, marker, agent) {
  const deadline = Date.now() + STEP_MS
  let last
  while (Date.now() < deadline) {
    last = await get(ingressPort, host)
    if (last.status === 200 && last.body.includes(marker)) return
    await new Promise((r) => setTimeout(r, 250))
  }
  fail(`no answer through the tunnel ${host}: last ${last?.status} ${last?.body}\n${agent.output()}`)
}

/** The shell commands of the doc's Install section, and the ExecStart lines of its units. */
function docCommands() {
  const doc = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8')
  const install = doc.slice(doc.indexOf('## Install\n'), doc.indexOf('\n## ', doc.indexOf('## Install\n') + 1))
  const block = /```sh\n([\s\S]*?)```/.exec(install)?.[1] ?? fail('docs/operations.md: no sh block under "## Install"')
  const execStart = [...doc.matchAll(/^ExecStart=(.*)$/gm)].map((m) => m[1])
  if (execStart.length !== 2) fail(`docs/operations.md: expected the ExecStart of two units, found ${execStart.length}`)
  // The Memory section's cap, as its one command line sets it for the server.
  const memory = /^NODE_OPTIONS=(\S+) \/opt\/apptunnel\/bin\/apptunnel server/m.exec(doc)?.[1] ?? fail('docs/operations.md: no NODE_OPTIONS=… line for the server under "## Memory"')
  return { install: block.trim().split('\n'), server: execStart[0], agent: execStart[1], memory }
}

const forDoc = (line) => line.replaceAll('/opt/apptunnel', prefix)

try {
  const doc = docCommands()
  const env = { ...process.env }
  // better-sqlite3 from the npm registry only: compiled here rather than downloaded from GitHub,
  // against this Node's own headers when it has them rather than headers from nodejs.org.
  env.npm_config_build_from_source = 'true'
  const headers = join(dirname(process.execPath), '..', 'include', 'node')
  if (existsSync(join(headers, 'node.h'))) env.npm_config_nodedir = join(headers, '..', '..')
  else console.log('# note: no Node.js headers next to node; node-gyp may fetch them from nodejs.org')

  const checked = new Set()
  for (const line of doc.install) {
    step(`docs/operations.md: ${line}`)
    const out = run('bash', ['-euo', 'pipefail', '-c', forDoc(line)], { env, timeout: INSTALL_MS })
    process.stdout.write(out.split('\n').slice(-3).join('\n') + '\n')
    // The package is checked as soon as it exists: a wrong one fails before the long install.
    for (const t of readdirSync(ROOT).filter((f) => /^apptunnel-.*\.tgz$/.test(f) && !checked.has(f))) {
      checked.add(t)
      step(`package contents: ${t}`)
      const files = run('tar', ['tzf', join(ROOT, t)]).trim().split('\n').map((f) => f.replace(/^package\//, ''))
      const unwanted = files.filter((f) => /\.ts$/.test(f) || /^(e2e|bench|scripts|\.ci|docs|test-)/.test(f) || f.includes('/testing/'))
      if (unwanted.length > 0) fail(`the package carries what does not run: ${unwanted.join(', ')}`)
      for (const f of ['bin/apptunnel.js', 'dist/apptunnel.mjs', 'package.json']) if (!files.includes(f)) fail(`the package lacks ${f}`)
      console.log(`${files.length} files`)
    }
  }
  if (checked.size === 0) fail('the Install commands of docs/operations.md made no package')

  const bin = join(prefix, 'bin', 'apptunnel')
  // The bundle carries every pure-JS library (decision 42): an install holds only the native
  // drivers, so none of the development dependencies may be there (and the copy must still run).
  step('installed dependencies: none of the devDependencies')
  const installed = join(prefix, 'lib', 'node_modules', 'apptunnel')
  const { dependencies = {}, devDependencies = {} } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'))
  const present = Object.keys(devDependencies).filter((d) => existsSync(join(installed, 'node_modules', d)) || existsSync(join(prefix, 'lib', 'node_modules', d)))
  if (present.length > 0) fail(`the install carries development dependencies: ${present.join(', ')}`)
  console.log(`dependencies: ${Object.keys(dependencies).join(', ')}`)
  run('chmod', ['-R', 'a-w', prefix])

  step('as uid 65534, read-only install: apptunnel --help')
  run(bin, ['--help'], { cwd: '/', env: nobodyEnv(), asNobody: true })

  step('as uid 65534: apptunnel demo --check')
  console.log(run(bin, ['demo', '--check'], { cwd: '/', env: nobodyEnv({ TMPDIR: home }), asNobody: true }).trim())

  step('as uid 65534: the server unit, then an agent with a key and an agent node of an instance')
  const [httpsPort, ingressPort] = [await freePort(), await freePort()]
  const serverData = join(data, 'server')
  const config = join(home, 'server.yaml')
  writeFileSync(config, `dataDir: ${serverData}\nlisten: 127.0.0.1:${httpsPort}\ningressListen: 127.0.0.1:${ingressPort}\n`)
  const [serverCmd, ...serverArgs] = forDoc(doc.server).replace('/etc/apptunnel/server.yaml', config).split(' ')
  // With the memory cap of docs/operations.md, "Memory", which must reach the bundle through the bin.
  const server = start('server', serverCmd, serverArgs, nobodyEnv({ NODE_OPTIONS: doc.memory }))

  const upstream = createServer((_req, res) => res.end('installed-upstream'))
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r))
  const upstreamAt = `127.0.0.1:${upstream.address().port}`

  const create = async (name) => {
    const deadline = Date.now() + STEP_MS
    for (;;) {
      const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', bin, 'tunnel', 'create', '--name', name, '--data-dir', serverData, '--json'], { cwd: '/', env: nobodyEnv(), encoding: 'utf8', timeout: STEP_MS })
      if (r.status === 0) return JSON.parse(r.stdout)
      if (Date.now() > deadline || server.child.exitCode !== null) fail(`tunnel create failed: ${r.stdout}${r.stderr}\n${server.output()}`)
      await new Promise((res) => setTimeout(res, 500))
    }
  }
  const direct = await create('installed agent')
  const agent = start('agent', bin, ['agent', '--key', direct.key, '--upstream', upstreamAt, '--data-dir', join(data, 'agent')], nobodyEnv())
  await expectThroughTunnel(ingressPort, new URL(direct.applicationLinkUrl).host, 'installed-upstream', agent)
  console.log('agent --key: 200 through the tunnel')

  const node = await create('installed instance')
  const instanceDb = join(data, 'instance.db')
  run(bin, ['key', 'add', '-', '--database', instanceDb], { cwd: '/', env: nobodyEnv(), asNobody: true, input: node.key })
  const agentUnit = forDoc(doc.agent).replaceAll('/var/lib/apptunnel', join(data, 'node')).replace('127.0.0.1:8081', upstreamAt)
  const [agentCmd, ...agentArgs] = agentUnit.split(' ')
  const instanceNode = start('agent node', agentCmd, agentArgs, nobodyEnv({ APPTUNNEL_DATABASE: instanceDb }))
  await expectThroughTunnel(ingressPort, new URL(node.applicationLinkUrl).host, 'installed-upstream', instanceNode)
  console.log('agent unit (instance node): 200 through the tunnel')

  await stop(instanceNode)
  await stop(agent)
  await stop(server)
  await new Promise((r) => upstream.close(r))
  console.log('the installed package works read-only as an unprivileged user')
} catch (err) {
  failed = true
  console.error(err instanceof Error ? err.message : err)
} finally {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
  for (const f of readdirSync(ROOT)) if (/^apptunnel-.*\.tgz$/.test(f)) rmSync(join(ROOT, f))
  spawnSync('chmod', ['-R', 'u+w', work])
  rmSync(work, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
