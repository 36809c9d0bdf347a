// The Dockerfile and deploy/compose.yaml as files: what they promise (non-root, read-only root,
// data in a volume, a health check, replicas on one PostgreSQL) is checked, and the commands and
// environment they give the server are run as they are, on loopback: the compose file's two
// replicas start on the test PostgreSQL, link, report ready, pass the image's HEALTHCHECK command
// and drain within the compose file's stop_grace_period. Building and running the image itself is
// scripts/container/ci.sh's part (it needs a container engine).
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { parse } from 'yaml'
import { CLI } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { freePort } from '../src/testing/free-port.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'

checkNoLeakedHandles()

const ROOT = new URL('..', import.meta.url).pathname

interface Instruction {
  keyword: string
  args: string
}

/** Dockerfile instructions per stage: comments dropped, continuation lines joined. */
function dockerfileStages(text: string): Instruction[][] {
  const logical: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue
    const line = raw.replace(/\s+$/, '')
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    current += line
    if (current.trim() !== '') logical.push(current.trim())
    current = ''
  }
  const stages: Instruction[][] = []
  for (const l of logical) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(l)!
    const ins = { keyword: keyword!.toUpperCase(), args: args!.replace(/\s+/g, ' ') }
    if (ins.keyword === 'FROM') stages.push([])
    if (stages.length === 0) continue // ARG before the first FROM
    stages.at(-1)!.push(ins)
  }
  return stages
}

/** `ENV A=1 B=2` instructions of a stage, as one map. */
function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const i of stage.filter((s) => s.keyword === 'ENV')) {
    for (const pair of i.args.split(' ')) {
      const eq = pair.indexOf('=')
      assert.ok(eq > 0, `ENV ${i.args}: only KEY=VALUE pairs are used`)
      env[pair.slice(0, eq)] = pair.slice(eq + 1)
    }
  }
  return env
}

/** Compose's variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?message}. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    const v = vars[name]
    if (v !== undefined && v !== '') return v
    if (op === '-') return arg!
    throw new Error(`compose: ${name} is not set${op === '?' ? `: ${arg}` : ''}`)
  })
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':')
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) }
}

const stages = dockerfileStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const final = stages.at(-1)!
const imageEnv = envOf(final)
const compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, Record<string, unknown>>
  volumes: Record<string, unknown>
}
const replicas = Object.keys(compose.services).filter((s) => s.startsWith('replica-'))
const pg = (await databaseTargets()).find((t) => t.name === 'postgres')!

describe('Dockerfile', () => {
  test('builds in one stage and runs in another, as a non-root user, with data in a volume', () => {
    assert.ok(stages.length >= 2, 'multi-stage')
    const copies = final.filter((i) => i.keyword === 'COPY')
    assert.ok(copies.length > 0 && copies.every((c) => c.args.startsWith('--from=')), 'the final stage copies only from the build stage')
    // Of the source tree only the consoles' static files, which the server reads at run time.
    assert.deepEqual(
      copies.filter((c) => / \.\/src$/.test(c.args)).map((c) => c.args),
      ['--from=build /runtime/src ./src'],
      'no TypeScript sources in the final stage',
    )
    assert.ok(stages[0]!.some((i) => i.keyword === 'RUN' && i.args.includes("find src -type f ! -name '*.ts' -exec cp --parents {} /runtime")))
    assert.ok(copies.some((c) => /node_modules/.test(c.args)) && copies.some((c) => /\/dist\b/.test(c.args)))
    const build = stages[0]!.map((i) => i.args).join('\n')
    assert.match(build, /npm ci/)
    assert.match(build, /npm prune --omit=dev/, 'development dependencies stay in the build stage')
    const users = final.filter((i) => i.keyword === 'USER')
    assert.equal(users.length, 1)
    assert.notEqual(users[0]!.args, 'root')
    assert.notEqual(users[0]!.args, '0')
    // Everything after USER runs as that user: nothing may write into the image after it.
    assert.ok(!final.slice(final.indexOf(users[0]!)).some((i) => i.keyword === 'RUN'))
    const volume = final.find((i) => i.keyword === 'VOLUME')
    assert.equal(volume?.args, imageEnv['APPTUNNEL_DATA_DIR'], 'the data directory is the volume')
  })

  test('the health check asks /healthz on the metrics listener the image configures', () => {
    const hc = final.find((i) => i.keyword === 'HEALTHCHECK')
    assert.ok(hc, 'HEALTHCHECK')
    const cmd = JSON.parse(hc.args.slice(hc.args.indexOf('CMD ') + 4)) as string[]
    assert.equal(cmd[0], 'node')
    assert.match(cmd.join(' '), new RegExp(`http://127\\.0\\.0\\.1:${hostPort(imageEnv['APPTUNNEL_METRICS_LISTEN']!).port}/healthz`))
  })
})

describe('deploy/compose.yaml', () => {
  test('two replicas of the image, read-only, each with its own volume, after a healthy PostgreSQL', () => {
    assert.deepEqual(replicas, ['replica-1', 'replica-2'])
    const db = compose.services['db']!
    assert.ok(db['healthcheck'], 'the database has a health check to wait for')
    const published = new Set<string>()
    for (const name of replicas) {
      const s = compose.services[name]!
      assert.equal(s['read_only'], true, `${name}: read-only root file system`)
      assert.deepEqual(s['tmpfs'], ['/tmp'])
      assert.deepEqual(s['depends_on'], { db: { condition: 'service_healthy' } })
      assert.deepEqual(s['volumes'], [`${name}:${imageEnv['APPTUNNEL_DATA_DIR']}`])
      assert.ok(name in compose.volumes)
      // The engine's SIGKILL must not cut a drain short.
      const grace = /^(\d+)s$/.exec(String(s['stop_grace_period']))
      assert.ok(grace && Number(grace[1]) * 1000 > 10_000 + 5_000, `${name}: stop_grace_period leaves drainTimeoutMs (10 s) room`)
      for (const p of s['ports'] as string[]) {
        const parts = p.split(':')
        const container = Number(parts.at(-1))
        assert.ok(
          ['APPTUNNEL_LISTEN', 'APPTUNNEL_INGRESS_LISTEN', 'APPTUNNEL_METRICS_LISTEN'].some((k) => hostPort(imageEnv[k]!).port === container),
          `${name}: ${p} publishes a port the image listens on`,
        )
        const host = parts.slice(0, -1).join(':')
        assert.ok(!published.has(host), `${host} published twice`)
        published.add(host)
      }
    }
  })

  describe('its replicas, run with its environment on loopback', { skip: pg.skip }, () => {
    const running: ChildProcess[] = []
    const dirs: string[] = []
    after(async () => {
      for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
      await Promise.all(running.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)))
      for (const d of dirs) await rm(d, { recursive: true, force: true })
      await pg.dispose()
    })

    test('start on one database, link, are ready, pass the HEALTHCHECK command, and drain on SIGTERM', async () => {
      const vars = { APPTUNNEL_DB_PASSWORD: 'not-used-on-loopback' }
      const db = compose.services['db']!['environment'] as Record<string, string>
      const database = await pg.url()
      const cmd = JSON.parse(final.find((i) => i.keyword === 'CMD')!.args) as string[]
      const started: { name: string; child: ChildProcess; metricsPort: number }[] = []
      const clusterPorts = new Map<string, number>()
      for (const name of replicas) clusterPorts.set(name, await freePort())

      for (const name of replicas) {
        const env: Record<string, string> = { ...imageEnv }
        for (const [k, v] of Object.entries(compose.services[name]!['environment'] as Record<string, string>)) env[k] = interpolate(v, vars)
        // Each container has an address of its own; on loopback each gets ports of its own instead.
        const ports: Record<string, number> = {}
        for (const k of ['APPTUNNEL_LISTEN', 'APPTUNNEL_INGRESS_LISTEN', 'APPTUNNEL_METRICS_LISTEN']) {
          assert.equal(hostPort(env[k]!).host, '0.0.0.0', `${k} listens on every address of the container`)
          ports[k] = await freePort()
          env[k] = `127.0.0.1:${ports[k]}`
        }
        const advertise = hostPort(env['APPTUNNEL_CLUSTER_ADVERTISE']!)
        assert.equal(advertise.host, name, 'a replica advertises its own service name to the others')
        assert.equal(advertise.port, hostPort(env['APPTUNNEL_CLUSTER_LISTEN']!).port)
        env['APPTUNNEL_CLUSTER_LISTEN'] = env['APPTUNNEL_CLUSTER_ADVERTISE'] = `127.0.0.1:${clusterPorts.get(name)}`
        assert.equal(
          env['APPTUNNEL_DATABASE'],
          `postgres://${db['POSTGRES_USER']}:${vars.APPTUNNEL_DB_PASSWORD}@db:5432/${db['POSTGRES_DB']}`,
          'the replicas reach the db service with its user, password and database',
        )
        env['APPTUNNEL_DATABASE'] = database
        const dir = await mkdtemp(join(tmpdir(), `apptunnel-${name}-`))
        dirs.push(dir)
        env['APPTUNNEL_DATA_DIR'] = dir
        const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('APPTUNNEL_')))
        const child = spawn(process.execPath, [CLI, ...cmd], { env: { ...base, ...env, APPTUNNEL_LOG_FORMAT: 'json' }, stdio: ['ignore', 'ignore', 'pipe'] })
        let log = ''
        child.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)))
        child.once('exit', (code) => {
          if (code !== 0) process.stderr.write(`${name} exited ${code}:\n${log}\n`)
        })
        running.push(child)
        started.push({ name, child, metricsPort: ports['APPTUNNEL_METRICS_LISTEN']! })
      }

      const metrics = async (port: number, path: string): Promise<{ status: number; body: string }> => {
        const r = await fetch(`http://127.0.0.1:${port}${path}`)
        return { status: r.status, body: await r.text() }
      }
      for (const r of started) {
        await eventually(async () => (await metrics(r.metricsPort, '/readyz').catch(() => ({ status: 0 }))).status === 200, `${r.name} ready`, 60_000)
        await eventually(
          async () => /apptunnel_cluster_auths_success_total\{[^}]*\} [1-9]/.test((await metrics(r.metricsPort, '/metrics')).body),
          `${r.name} authenticated a bus link to the other replica`,
          30_000,
        )
      }

      const hc = final.find((i) => i.keyword === 'HEALTHCHECK')!
      const hcCmd = JSON.parse(hc.args.slice(hc.args.indexOf('CMD ') + 4)) as string[]
      const imageMetricsPort = String(hostPort(imageEnv['APPTUNNEL_METRICS_LISTEN']!).port)
      const healthcheck = (port: number): Promise<number> =>
        new Promise((resolve) => {
          const args = hcCmd.slice(1).map((a) => a.replace(`:${imageMetricsPort}/`, `:${port}/`))
          execFile(process.execPath, args, { timeout: 10_000 }, (err) => resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1))
        })
      for (const r of started) assert.equal(await healthcheck(r.metricsPort), 0, `${r.name}: HEALTHCHECK passes`)

      const grace = Number(/^(\d+)s$/.exec(String(compose.services['replica-1']!['stop_grace_period']))![1]) * 1000
      for (const r of started) {
        const exited = new Promise<number | null>((resolve) => r.child.once('exit', (code) => resolve(code)))
        r.child.kill('SIGTERM')
        let timer: NodeJS.Timeout | undefined
        const code = await Promise.race([exited, new Promise<'killed'>((resolve) => (timer = setTimeout(resolve, grace, 'killed')))])
        clearTimeout(timer)
        assert.equal(code, 0, `${r.name} drains and exits 0 before the engine would kill it`)
        assert.equal(await healthcheck(r.metricsPort), 1, `${r.name}: HEALTHCHECK fails once nothing answers`)
      }
    })
  })
})
