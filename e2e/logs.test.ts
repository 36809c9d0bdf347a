import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { waitForServerInfo } from '../src/testing/server-info.ts'

checkNoLeakedHandles()

/** Runs `apptunnel server` with env, sends one request to an unknown tunnel, stops it; its stderr. */
async function serverLog(env: Record<string, string>): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-logs-'))
  const child = spawn(process.execPath, [CLI, 'server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0', '--log-level', 'info'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')))
  try {
    const info = await waitForServerInfo(dataDir, { output: () => stderr, exited: () => child.exitCode !== null })
    const port = Number(info.ingress.split(':').pop())
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'nosuchtunnel.localhost' }, agent: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
      req.end()
    })
    assert.equal(status, 404)
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
    await rm(dataDir, { recursive: true, force: true })
  }
  return stderr
}

test('APPTUNNEL_DEBUG=ingress: debug lines from the ingress only, info from everyone', async () => {
  const stderr = await serverLog({ APPTUNNEL_DEBUG: 'ingress', APPTUNNEL_LOG_FORMAT: 'json' })
  const entries = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; component?: string; msg: string })
  const debug = entries.filter((e) => e.level === 20)
  assert.ok(debug.length > 0, `some debug lines: ${stderr}`)
  assert.ok(debug.every((e) => e.component === 'ingress'), `only the ingress logs at debug: ${JSON.stringify(debug)}`)
  assert.ok(entries.some((e) => e.level === 30 && e.msg === 'tunnel server listening'), 'info lines still come')
})

test('without APPTUNNEL_DEBUG there is no debug line; APPTUNNEL_LOG_FORMAT=pretty prints readable lines', async () => {
  const stderr = await serverLog({ APPTUNNEL_LOG_FORMAT: 'pretty' })
  assert.doesNotMatch(stderr, /DEBUG/)
  assert.match(stderr, /^\d\d:\d\d:\d\d\.\d{3} {2}INFO {2}.*tunnel server listening/m)
  assert.ok(!stderr.split('\n').some((l) => l.startsWith('{')), 'no JSON lines')
  // readable lines, but standard error is a pipe here: no colour, whatever NO_COLOR says
  assert.doesNotMatch(stderr, /\u001b\[/)
})

test('an unknown debug module is refused before the server starts, naming the modules', async () => {
  const r = await cli(['server', '--data-dir', join(tmpdir(), 'apptunnel-never-started'), '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0'], { APPTUNNEL_DEBUG: 'ingres' })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /APPTUNNEL_DEBUG: unknown module "ingres"; the modules are tunnel, ingress/)
})

/** A loopback port nothing listens on: bound, then closed, so a dial to it is refused at once. */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net')
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

interface LogLine {
  level: number
  msg: string
  status?: string
  reason?: string
  code?: string
  since?: string
  target?: string
}

/** Runs a single agent (no --database) against a closed port until its status line says UNAVAILABLE; its log lines. */
async function agentAgainstClosedPort(logLevel: string, graceMs: number): Promise<{ lines: LogLine[]; raw: string; key: string; secret: string; port: number }> {
  const { encodeSecurityKey } = await import('../src/protocol/index.ts')
  const { randomBytes } = await import('node:crypto')
  const port = await closedPort()
  const secret = randomBytes(32)
  const key = encodeSecurityKey({ serverUrl: `https://127.0.0.1:${port}`, tunnelId: 'tnclosedport01', secret })
  const child = spawn(process.execPath, [CLI, 'agent', '--key', key, '--upstream', '127.0.0.1:1', '--sessions', '1', '--connect-grace-ms', String(graceMs), '--log-level', logLevel], {
    env: { ...process.env, APPTUNNEL_LOG_FORMAT: 'json', APPTUNNEL_RECONNECT_INITIAL_MS: '100', APPTUNNEL_RECONNECT_MAX_MS: '200' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let raw = ''
  child.stderr!.on('data', (d: Buffer) => (raw += d.toString('utf8')))
  const exited = new Promise((r) => child.once('exit', r))
  try {
    const deadline = Date.now() + 30_000
    while (!raw.split('\n').some((l) => l.includes('"msg":"agent status"') && l.includes('"status":"UNAVAILABLE"'))) {
      if (Date.now() > deadline || child.exitCode !== null) assert.fail(`no UNAVAILABLE status line; log so far:\n${raw}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  const lines = raw
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
  return { lines, raw, key, secret: secret.toString('base64url'), port }
}

test('a single agent whose server refuses: a debug line per failed dial (target and reason, never the secret); CONNECTING through --connect-grace-ms, then UNAVAILABLE', async () => {
  const graceMs = 1500
  const { lines, raw, key, secret, port } = await agentAgainstClosedPort('debug', graceMs)
  const statuses = lines.filter((l) => l.msg === 'agent status')
  assert.deepEqual(
    statuses.map((l) => [l.level, l.status]),
    [
      [30, 'CONNECTING'],
      [30, 'CONNECTING'],
      [40, 'UNAVAILABLE'],
    ],
    raw,
  )
  assert.match(statuses[1]!.reason!, /^still connecting; last attempt: cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED$/)
  assert.equal(statuses[2]!.code, 'TUN_ERR_SERVER_UNREACHABLE')
  // the grace counts from the first status; the node turned UNAVAILABLE no earlier than its end
  assert.ok(Date.parse(statuses[2]!.since!) - Date.parse(statuses[0]!.since!) >= graceMs, `${statuses[0]!.since} → ${statuses[2]!.since}`)

  const unavailableAt = lines.indexOf(statuses[2]!)
  const dials = lines.slice(0, unavailableAt).filter((l) => l.msg === 'dial failed')
  assert.ok(dials.length >= 2, `every failed dial in the grace has its line:\n${raw}`)
  for (const d of dials) {
    assert.equal(d.level, 20)
    assert.equal(d.target, `https://127.0.0.1:${port}`)
    assert.equal(d.code, 'TUN_ERR_SERVER_UNREACHABLE')
    assert.match(d.reason!, /ECONNREFUSED/)
  }
  assert.ok(!raw.includes(key) && !raw.includes(secret), 'neither the key nor its secret is logged')
})

test('at --log-level info a single agent logs its status changes, not each failed dial or session', async () => {
  const { lines, raw } = await agentAgainstClosedPort('info', 300)
  assert.deepEqual(
    lines.filter((l) => l.msg === 'agent status').map((l) => l.status),
    ['CONNECTING', 'CONNECTING', 'UNAVAILABLE'],
    raw,
  )
  assert.ok(!lines.some((l) => l.level < 30), raw)
})
