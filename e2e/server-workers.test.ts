import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { freePort } from '../src/testing/free-port.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const WORKERS = 2

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/** A port with the next WORKERS - 1 free too: worker i listens on port + i. */
async function freePorts(): Promise<number> {
  for (;;) {
    const port = await freePort()
    let all = true
    for (let i = 1; i < WORKERS; i++) all &&= await isFree(port + i)
    if (all) return port
  }
}

/** One /metrics text from a worker's own metrics listener. */
function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      res.on('error', reject)
    })
      .on('error', reject)
      .end()
  })
}

/** The sum of every series of one metric (all its label values). */
function metric(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('apptunnel server --workers 2: one ingress port, two server processes', () => {
  let dir: string
  let upstream: TestUpstream
  let server: ChildProcess
  let agent: TunnelAgent | undefined
  const output: string[] = []
  let apiPort: number
  let ingressPort: number
  let metricsPort: number
  let hostHeader: string
  let accessLog: string

  const text = (): string => output.join('')
  /** The pid of each worker, from the last banner or restart line that named it. */
  const workerPids = (): number[] => {
    const pids: number[] = []
    for (const m of text().matchAll(/worker (\d+) \(pid (\d+)\)/g)) pids[Number(m[1])] = Number(m[2])
    for (const line of text().split('\n').filter((l) => l.includes('server worker restarted'))) {
      const m = /"worker":(\d+),"workerPid":(\d+)/.exec(line)
      if (m !== null) pids[Number(m[1])] = Number(m[2])
    }
    return pids
  }
  const get = (path = '/hello') => ingressRequest({ port: ingressPort }, hostHeader, { path })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-workers-'))
    accessLog = join(dir, 'access.log')
    upstream = await startTestUpstream()
    ;[apiPort, metricsPort, ingressPort] = [await freePorts(), await freePorts(), await freePort()]
    server = spawn(
      process.execPath,
      [
        CLI, 'server', '--workers', String(WORKERS), '--data-dir', dir,
        '--listen', `127.0.0.1:${apiPort}`, '--ingress-listen', `127.0.0.1:${ingressPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`,
        '--cluster-heartbeat-ms', '200', '--access-log', accessLog, '--log-level', 'info',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    server.stderr!.setEncoding('utf8').on('data', (s: string) => output.push(s))
    await eventually(() => text().includes(`${WORKERS} workers share the ingress port`) || server.exitCode !== null, 'the workers ready', 30_000)
    assert.equal(server.exitCode, null, text())

    const created = await cli(['tunnel', 'create', '--name', 'workers', '--data-dir', dir, '--json'])
    assert.equal(created.code, 0, created.stderr)
    const tunnel = JSON.parse(created.stdout) as { id: string; key: string; applicationLinkUrl: string }
    hostHeader = new URL(tunnel.applicationLinkUrl).host
    agent = await startTestAgent(tunnel.key, upstream.address, { nodeId: 'onprem-1' })
    await agent.waitFor((s) => s.status === 'CONNECTED')
  })
  after(async () => {
    await agent?.close()
    if (server !== undefined && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r))
      server.kill('SIGTERM')
      await exited
    }
    await upstream?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('the workers are nodes of one cluster: w0 and w1, with agent endpoints on port and port + 1', () => {
    assert.match(text(), new RegExp(`worker 0 \\(pid \\d+\\): agents at https://127\\.0\\.0\\.1:${apiPort}, bus 127\\.0\\.0\\.1:\\d+, metrics http://127\\.0\\.0\\.1:${metricsPort}`))
    assert.match(text(), new RegExp(`worker 1 \\(pid \\d+\\): agents at https://127\\.0\\.0\\.1:${apiPort + 1}, bus 127\\.0\\.0\\.1:\\d+, metrics http://127\\.0\\.0\\.1:${metricsPort + 1}`))
    assert.match(text(), /cluster node [A-Za-z0-9._-]+-w0/)
    const pids = workerPids()
    assert.equal(pids.length, WORKERS)
    assert.ok(!pids.includes(server.pid!), 'the workers are processes of their own')
  })

  test('the agent keeps sessions to every worker, learnt from the replica list', async () => {
    for (let i = 0; i < WORKERS; i++) {
      await eventually(async () => metric(await scrape(metricsPort + i), 'apptunnel_tunnel_sessions') > 0, `worker ${i} holds a session of the tunnel`)
    }
  })

  test('requests on new connections through the one ingress port are all answered, and both workers serve some', async () => {
    const before = await Promise.all([0, 1].map(async (i) => metric(await scrape(metricsPort + i), 'apptunnel_ingress_requests_total')))
    const REQUESTS = 20
    for (let n = 0; n < REQUESTS; n++) {
      const res = await get()
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'hello')
    }
    const served = await Promise.all([0, 1].map(async (i) => metric(await scrape(metricsPort + i), 'apptunnel_ingress_requests_total') - before[i]!))
    assert.equal(served[0]! + served[1]!, REQUESTS)
    // Round-robin hands connections out in turn: neither worker is left idle.
    assert.ok(served[0]! > 0 && served[1]! > 0, `served per worker: ${served.join(', ')}`)
  })

  test('a request body travels through a worker to the app and back intact', async () => {
    const body = Buffer.alloc(256 * 1024, 7)
    const res = await ingressRequest({ port: ingressPort }, hostHeader, { method: 'POST', path: '/echo', body })
    assert.equal(res.status, 200)
    assert.ok(res.body.equals(body))
  })

  test('admin commands work through the server.json of whichever worker wrote it', async () => {
    const listed = await cli(['tunnel', 'list', '--data-dir', dir, '--json'])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /"CONNECTED"/)
  })

  test('SIGHUP reaches every worker: each reopens the access log at its path', async () => {
    await eventually(async () => (await readFile(accessLog, 'utf8').catch(() => '')).length > 0, 'access log lines written')
    await rename(accessLog, accessLog + '.1')
    server.kill('SIGHUP')
    // Once both workers reopened, requests on new connections (spread over both) all land in the new file.
    await eventually(async () => {
      const moved = (await readFile(accessLog + '.1', 'utf8')).length
      for (let n = 0; n < 4; n++) assert.equal((await get()).status, 200)
      return (await readFile(accessLog + '.1', 'utf8')).length === moved && (await readFile(accessLog, 'utf8').catch(() => '')).length > 0
    }, 'both workers write to the new file')
    assert.equal(server.exitCode, null, 'the supervisor and its workers live on')
    assert.ok(workerPids().every(alive))
  })

  test('a worker killed with SIGKILL is restarted, and the tunnel goes on working through the ingress', async () => {
    const [, killed] = workerPids()
    process.kill(killed!, 'SIGKILL')
    await eventually(() => text().includes('server worker exited unexpectedly'), 'the supervisor saw the worker die')
    await eventually(() => workerPids()[1] !== killed, 'worker 1 restarted', 20_000)
    assert.ok(!alive(killed!))
    assert.ok(alive(workerPids()[1]!))
    await eventually(async () => metric(await scrape(metricsPort + 1), 'apptunnel_tunnel_sessions') > 0, 'the agent is back on worker 1')
    for (let n = 0; n < 6; n++) assert.equal((await get()).status, 200)
  })

  test('SIGTERM drains every worker: a request in flight is answered, then every process exits 0', async () => {
    const pids = workerPids()
    const slow = get('/slow?ms=700')
    await eventually(() => upstream.seen.some((s) => s.url === '/slow?ms=700'), 'the slow request reached the app')
    const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)))
    server.kill('SIGTERM')
    const res = await slow
    assert.equal(res.status, 200)
    assert.equal(await exited, 0, text())
    assert.match(text(), /SIGTERM received, draining 2 workers/)
    assert.ok(!pids.some(alive), 'no worker outlives the supervisor')
    assert.ok(await isFree(ingressPort), 'the ingress port is released')
  })
})

describe('apptunnel server --workers: bad values are refused at the edge, naming the problem', () => {
  const cases: Array<{ args: string[]; env?: Record<string, string>; says: RegExp }> = [
    { args: ['--workers', '0'], says: /workers: "0" is not a number of workers: expected a whole number from 1 to 64, or "auto"/ },
    { args: ['--workers', '65'], says: /workers: "65" is not a number of workers/ },
    { args: ['--workers', 'many'], says: /workers: "many" is not a number of workers.*\(flag --workers\)/ },
    { args: [], env: { APPTUNNEL_WORKERS: '1.5' }, says: /workers: "1.5" is not a number of workers.*\(env APPTUNNEL_WORKERS\)/ },
    { args: ['--workers', '2', '--listen', '127.0.0.1:0'], says: /listen: with workers, worker i listens on this port \+ i, so it must not be 0/ },
    { args: ['--workers', '3', '--listen', '127.0.0.1:65534'], says: /listen: port 65534 \+ 2 \(the last of 3 workers\) is past 65535/ },
  ]
  for (const c of cases) {
    test(`${[...c.args, ...Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`)].join(' ')}: exit 2 with a one-line error`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'apptunnel-workers-bad-'))
      try {
        const res = await cli(['server', '--data-dir', dir, ...c.args], c.env)
        assert.equal(res.code, 2, res.stderr)
        assert.match(res.stderr, c.says)
        assert.match(res.stderr, /TUN_ERR_CONFIG_INVALID/)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

describe('apptunnel server --workers: a worker that cannot start', () => {
  test("worker 1's agent port taken: the server exits 1 naming the worker, and stops worker 0", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-workers-busy-'))
    const apiPort = await freePorts()
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(apiPort + 1, '127.0.0.1', resolve))
    try {
      const res = await cli(['server', '--workers', '2', '--data-dir', dir, '--listen', `127.0.0.1:${apiPort}`, '--ingress-listen', `127.0.0.1:${await freePort()}`, '--log-level', 'warn'])
      assert.equal(res.code, 1, res.stderr)
      assert.match(res.stderr, /EADDRINUSE/)
      assert.match(res.stderr, /server worker 1 exited with code 1 before it was ready \(its error is above\) \[TUN_ERR_SERVER_WORKER_FAILED\]/)
      // Worker 0 was drained: its port is free again.
      assert.ok(await isFree(apiPort))
    } finally {
      await new Promise((resolve) => taken.close(resolve))
      await rm(dir, { recursive: true, force: true })
    }
  })
})
