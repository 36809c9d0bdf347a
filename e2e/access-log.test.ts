import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { docBlockWith } from '../src/testing/doc-blocks.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { rawExchange } from '../src/testing/raw-exchange.ts'
import { waitForServerInfo } from '../src/testing/server-info.ts'
import { startConnectedTunnel, type ConnectedTunnel } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

interface Line {
  time: string
  tunnel: string | null
  method: string | null
  path: string | null
  status: number | null
  bytesIn: number
  bytesOut: number
  durationMs: number
  client: string
  session: string | null
  node: string | null
  code: string | null
  forwardedFrom?: string
  forwardedTo?: string
  incomplete?: true
}

async function readLines(file: string): Promise<Line[]> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line)
}

/** Lengths of the HTTP responses in `raw`, each framed by Content-Length (what these tests send back). */
function responseLengths(raw: string): number[] {
  const out: number[] = []
  let at = 0
  while (at < raw.length) {
    const headEnd = raw.indexOf('\r\n\r\n', at) + 4
    assert.ok(headEnd > 3, `a response head in ${JSON.stringify(raw.slice(at))}`)
    const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(raw.slice(at, headEnd))
    assert.ok(length !== null, 'responses here carry Content-Length')
    const end = headEnd + Number(length[1])
    out.push(end - at)
    at = end
  }
  return out
}

describe('access log (--access-log): one JSON line per caller request', () => {
  let fixture: ConnectedTunnel
  let dir: string
  let file: string
  let guarded: Awaited<ReturnType<ConnectedTunnel['server']['createTunnel']>>
  let credential: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-access-log-'))
    file = join(dir, 'access.log')
    fixture = await startConnectedTunnel({ accessLog: file })
    // A tunnel no agent serves, open only to a linked product's credential.
    guarded = await fixture.server.createTunnel('guarded')
    const product = await fixture.server.products.add({ orgId: fixture.server.orgId, name: 'test', sourceAddress: '127.0.0.1' }, guarded.id, { name: 'Jira Cloud' })
    credential = product.credentialValue!
  })
  after(async () => {
    await fixture?.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** Waits until the file holds `count` more lines than `before`, and returns those. */
  async function newLines(before: number, count: number): Promise<Line[]> {
    let lines: Line[] = []
    await eventually(async () => (lines = await readLines(file)).length >= before + count, `${count} access log lines`)
    // Lines come once the event loop wrote them; give a stray extra line the chance to show up.
    await new Promise((r) => setTimeout(r, 100))
    lines = await readLines(file)
    assert.equal(lines.length, before + count, `exactly ${count} new lines: ${JSON.stringify(lines.slice(before))}`)
    return lines.slice(before)
  }

  test('the file is created 0600', async () => {
    assert.equal((await stat(file)).mode & 0o777, 0o600)
  })

  test('a GET with a query: the path without it, the status, the exact bytes each way, the session that served it', async () => {
    const before = (await readLines(file)).length
    const request = `GET /hello?token=s3cr3t-query&x=1 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\nConnection: close\r\n\r\n`
    const t0 = Date.now()
    const answer = await rawExchange(fixture.server.ingressAddress.port, request)
    assert.match(answer, /^HTTP\/1\.1 200 /)
    const [line] = await newLines(before, 1)
    const session = [...fixture.server.registry.all()][0]!.info
    assert.deepEqual({ ...line, time: undefined, durationMs: undefined }, {
      time: undefined,
      tunnel: fixture.tunnel.id,
      method: 'GET',
      path: '/hello',
      status: 200,
      bytesIn: request.length,
      bytesOut: answer.length,
      durationMs: undefined,
      client: '127.0.0.1',
      session: session.sessionId,
      node: 'test-node',
      code: null,
    })
    assert.ok(line!.durationMs >= 0 && line!.durationMs < 30_000)
    assert.ok(Math.abs(Date.parse(line!.time) - t0) < 30_000, `time ${line!.time}`)
  })

  test('a POST with a body: body bytes count in, a credential header never appears', async () => {
    const before = (await readLines(file)).length
    const body = 'b'.repeat(3000)
    const request = `POST /sha256 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\nX-Apptunnel-Credential: atp1_notlogged_secretvalue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
    const answer = await rawExchange(fixture.server.ingressAddress.port, request)
    assert.match(answer, /^HTTP\/1\.1 200 /)
    const [line] = await newLines(before, 1)
    assert.equal(line!.method, 'POST')
    assert.equal(line!.path, '/sha256')
    assert.equal(line!.status, 200)
    assert.equal(line!.bytesIn, request.length)
    assert.equal(line!.bytesOut, answer.length)
    assert.equal(line!.code, null)
  })

  test('answers the ingress gives itself: 404 unknown tunnel, 503 no session, 403 refused, each with its code and no session', async () => {
    const before = (await readLines(file)).length
    const port = fixture.server.ingressAddress.port
    const last = fixture.tunnel.id.slice(-1)
    const unknownId = fixture.tunnel.id.slice(0, -1) + (last === 'a' ? 'b' : 'a')
    const host = (id: string) => `${id}.localhost:${port}`
    const unknown = await rawExchange(port, `GET /x?q=1 HTTP/1.1\r\nHost: ${host(unknownId)}\r\n\r\n`)
    const noSession = await rawExchange(port, `GET /y?q=2 HTTP/1.1\r\nHost: ${guarded.hostHeader}\r\nX-Apptunnel-Credential: ${credential}\r\n\r\n`)
    const forbidden = await rawExchange(port, `DELETE /z HTTP/1.1\r\nHost: ${guarded.hostHeader}\r\nX-Apptunnel-Credential: atp1_wrong_credential\r\n\r\n`)
    assert.match(unknown, /^HTTP\/1\.1 404 /)
    assert.match(noSession, /^HTTP\/1\.1 503 /)
    assert.match(forbidden, /^HTTP\/1\.1 403 /)
    const lines = await newLines(before, 3)
    const pick = (l: Line) => [l.tunnel, l.method, l.path, l.status, l.code, l.session, l.bytesOut]
    assert.deepEqual(lines.map(pick), [
      [unknownId, 'GET', '/x', 404, 'TUN_ERR_INGRESS_UNKNOWN_TUNNEL', null, unknown.length],
      [guarded.id, 'GET', '/y', 503, 'TUN_ERR_INGRESS_NO_SESSION', null, noSession.length],
      [guarded.id, 'DELETE', '/z', 403, 'TUN_ERR_INGRESS_FORBIDDEN', null, forbidden.length],
    ])
  })

  test('a pipelined pair on one connection: two lines, each with its own bytes', async () => {
    const before = (await readLines(file)).length
    const first = `GET /hello?a=1 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\n\r\n`
    const second = `GET /bytes?n=700 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\nConnection: close\r\n\r\n`
    const answer = await rawExchange(fixture.server.ingressAddress.port, first + second)
    const lengths = responseLengths(answer)
    assert.equal(lengths.length, 2)
    const lines = await newLines(before, 2)
    assert.deepEqual(
      lines.map((l) => [l.path, l.status, l.bytesIn, l.bytesOut]),
      [
        ['/hello', 200, first.length, lengths[0]],
        ['/bytes', 200, second.length, lengths[1]],
      ],
    )
  })

  test('nothing secret or beyond the fields reaches the file', async () => {
    const text = await readFile(file, 'utf8')
    for (const secret of ['s3cr3t-query', 'token=', 'q=1', 'a=1', 'n=700', credential, 'atp1_', 'bbbbbbbb']) assert.ok(!text.includes(secret), `the log holds ${secret}`)
    const keys = new Set(['time', 'tunnel', 'method', 'path', 'status', 'bytesIn', 'bytesOut', 'durationMs', 'client', 'session', 'node', 'code'])
    for (const line of await readLines(file)) for (const k of Object.keys(line)) assert.ok(keys.has(k), `unexpected field ${k}`)
  })

  test('a request the caller gives up on still gets its line, marked incomplete', async () => {
    const before = (await readLines(file)).length
    const seen = fixture.upstream.seen.length
    const socket = connect(fixture.server.ingressAddress.port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(`GET /never?x=1 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\n\r\n`)
    await eventually(() => fixture.upstream.seen.length > seen, 'the app has the request')
    const closed = once(socket, 'close')
    // A reset, not a half-close (which the app would see, and answer or end, with a line of its own).
    socket.resetAndDestroy()
    await closed
    const [line] = await newLines(before, 1)
    assert.deepEqual([line!.path, line!.status, line!.bytesOut, line!.code, line!.incomplete], ['/never', null, 0, null, true])
  })
})

/**
 * Runs `apptunnel server` with extra flags; `exchange(get)` makes requests through `get(path)`
 * (an unknown tunnel: a 404 the ingress answers itself, needing no agent). Returns the stdout.
 */
async function withServerProcess(flags: string[], exchange: (get: (path: string) => Promise<number>, pid: number) => Promise<void>): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-access-cli-'))
  const child = spawn(process.execPath, [CLI, 'server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0', '--log-level', 'warn', ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')))
  try {
    const info = await waitForServerInfo(dataDir, { output: () => stderr, exited: () => child.exitCode !== null })
    const port = Number(info.ingress.split(':').pop())
    const get = async (path: string): Promise<number> => {
      const answer = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: nosuchtunnel.localhost\r\nConnection: close\r\n\r\n`)
      return Number(answer.slice(9, 12))
    }
    await exchange(get, child.pid!)
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
    }
    await rm(dataDir, { recursive: true, force: true })
  }
  return stdout
}

describe('access log from the command line', () => {
  test('off by default: the server writes no line anywhere', async () => {
    const stdout = await withServerProcess([], async (get) => {
      assert.equal(await get('/a?x=1'), 404)
    })
    assert.equal(stdout, '')
  })

  test('--access-log -: the lines go to standard output', async () => {
    const stdout = await withServerProcess(['--access-log', '-'], async (get) => {
      assert.equal(await get('/a?x=1'), 404)
      assert.equal(await get('/b'), 404)
    })
    const lines = stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
    assert.deepEqual(lines.map((l) => [l.path, l.status, l.code, l.tunnel]), [
      ['/a', 404, 'TUN_ERR_INGRESS_UNKNOWN_TUNNEL', 'nosuchtunnel'],
      ['/b', 404, 'TUN_ERR_INGRESS_UNKNOWN_TUNNEL', 'nosuchtunnel'],
    ])
  })

  test('logrotate with the configuration of docs/operations.md: later lines go to a fresh file at the same path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-access-rotate-'))
    const file = join(dir, 'access.log')
    try {
      await withServerProcess(['--access-log', file], async (get, pid) => {
        assert.equal(await get('/before'), 404)
        await eventually(async () => (await readLines(file)).length === 1, 'the first line')
        // The documented stanza with this test's file, and its signal sent to this server's process
        // instead of through systemd.
        const stanza = docBlockWith(new URL('../docs/operations.md', import.meta.url), 'postrotate').body
        const hup = 'systemctl kill -s HUP apptunnel-server.service'
        assert.ok(stanza.includes(hup) && stanza.includes('/var/log/apptunnel/access.log'), stanza)
        const conf = join(dir, 'logrotate.conf')
        await writeFile(conf, stanza.replace('/var/log/apptunnel/access.log', file).replace(hup, `kill -HUP ${pid}`), { mode: 0o644 })
        const rotated = spawnSync(existsSync('/usr/sbin/logrotate') ? '/usr/sbin/logrotate' : 'logrotate', ['--force', '--state', join(dir, 'logrotate.state'), conf], { encoding: 'utf8', timeout: 10_000 })
        assert.equal(rotated.status, 0, `logrotate (Debian package logrotate): ${rotated.error?.message ?? ''}${rotated.stderr}`)
        await eventually(async () => (await stat(file).catch(() => undefined)) !== undefined, 'the file reopened')
        assert.equal(await get('/after'), 404)
        await eventually(async () => (await readLines(file)).length === 1, 'the line after the rotation')
      })
      assert.deepEqual((await readLines(`${file}.1`)).map((l) => l.path), ['/before'])
      assert.deepEqual((await readLines(file)).map((l) => l.path), ['/after'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a file that cannot be opened stops the start with the option named', async () => {
    const r = await cli(['server', '--data-dir', join(tmpdir(), 'apptunnel-never-started-access'), '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0', '--access-log', join(tmpdir(), 'no-such-dir-apptunnel', 'access.log')])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /accessLog: cannot open .*no-such-dir-apptunnel.*: no such directory/)
  })
})
