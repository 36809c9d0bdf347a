import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'

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
    const deadline = Date.now() + 20_000
    let info: { ingress: string } | undefined
    while (info === undefined) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the server did not start: ${stderr}`)
      info = await readFile(join(dataDir, 'server.json'), 'utf8').then((t) => JSON.parse(t) as { ingress: string }, () => undefined)
      if (info === undefined) await new Promise((r) => setTimeout(r, 50))
    }
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
})

test('an unknown debug module is refused before the server starts, naming the modules', async () => {
  const r = await cli(['server', '--data-dir', join(tmpdir(), 'apptunnel-never-started'), '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0'], { APPTUNNEL_DEBUG: 'ingres' })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /APPTUNNEL_DEBUG: unknown module "ingres"; the modules are tunnel, ingress/)
})
