import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { callAdminApi } from '../src/cli/admin-client.ts'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { waitForServerInfo } from '../src/testing/server-info.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

describe('apptunnel CLI as outside scripts use it', () => {
  let dataDir: string
  let server: ChildProcess
  let info: { url: string; ingress: string; certificateFile: string }
  let upstream: TestUpstream

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-cli-'))
    upstream = await startTestUpstream()
    server = spawn(
      process.execPath,
      [CLI, 'server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0', '--ping-interval-ms', '300', '--ping-timeout-ms', '700', '--log-level', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    server.stderr!.resume()
    info = await waitForServerInfo(dataDir, { exited: () => server.exitCode !== null })
  })
  after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGCONT')
      server.kill('SIGTERM')
      await new Promise((r) => server.once('exit', r))
    }
    await upstream.close()
    await rm(dataDir, { recursive: true, force: true })
  })

  test('tunnel create --json returns id, name, status, key, applicationLinkUrl; list and show agree', async () => {
    const created = await cli(['tunnel', 'create', '--name', 'Jira DC', '--json', '--data-dir', dataDir])
    assert.equal(created.code, 0, created.stderr)
    const t = JSON.parse(created.stdout) as Record<string, string>
    for (const k of ['id', 'name', 'status', 'key', 'applicationLinkUrl']) assert.ok(k in t, `create --json has ${k}`)
    assert.equal(t.name, 'Jira DC')
    assert.equal(t.status, 'INCOMPLETE')
    assert.match(t.key!, /^atk1_/)
    const listed = await cli(['tunnel', 'list', '--json', '--data-dir', dataDir])
    assert.equal(listed.code, 0)
    const list = JSON.parse(listed.stdout) as Array<Record<string, unknown>>
    assert.equal(list.length, 1)
    assert.equal(list[0]!.id, t.id)
    assert.equal(list[0]!.key, undefined, 'the key is shown at creation only')
    const shown = await cli(['tunnel', 'show', t.id!, '--json', '--data-dir', dataDir])
    assert.equal(JSON.parse(shown.stdout).applicationLinkUrl, t.applicationLinkUrl)
    // the same through --server/--token/--ca-file, as from another host
    const token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim()
    const remote = await cli(['tunnel', 'show', t.id!, '--json', '--server', info.url, '--token', token, '--ca-file', info.certificateFile])
    assert.equal(remote.code, 0, remote.stderr)
    const viaEnv = await cli(['tunnel', 'list', '--json', '--ca-file', info.certificateFile], { APPTUNNEL_SERVER: info.url, APPTUNNEL_TOKEN: token })
    assert.equal(viaEnv.code, 0, viaEnv.stderr)
  })

  test('errors are one line on stderr with a code and a non-zero exit, never a stack trace', async () => {
    const dup = await cli(['tunnel', 'create', '--name', 'Jira DC', '--data-dir', dataDir])
    assert.notEqual(dup.code, 0)
    assert.match(dup.stderr, /^apptunnel: .*\[TUN_ERR_TUNNEL_NAME_TAKEN\]\n$/)
    const missing = await cli(['tunnel', 'show', 'aaaaaaaaaaaaaaaa', '--data-dir', dataDir])
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /TUN_ERR_TUNNEL_NOT_FOUND/)
    const badToken = await cli(['tunnel', 'list', '--server', info.url, '--token', 'nope', '--ca-file', info.certificateFile])
    assert.notEqual(badToken.code, 0)
    assert.match(badToken.stderr, /TUN_ERR_AUTH_TOKEN_INVALID/)
    for (const key of ['atk1_AAAA', 'not-a-key', 'atk1_' + 'A'.repeat(80)]) {
      const bad = await cli(['agent', '--key', key, '--upstream', '127.0.0.1:1'])
      assert.notEqual(bad.code, 0)
      assert.match(bad.stderr, /^apptunnel: security key is malformed: .+ \[TUN_ERR_KEY_MALFORMED\]\n$/)
      assert.doesNotMatch(bad.stderr, /\n\s+at /)
    }
  })

  test('with --json a server error is one JSON object {error: {code, message}} on stderr, nothing on stdout, exit code unchanged', async () => {
    const first = await cli(['tunnel', 'create', '--name', 'json errors', '--data-dir', dataDir])
    assert.equal(first.code, 0, first.stderr)
    const human = await cli(['tunnel', 'create', '--name', 'json errors', '--data-dir', dataDir])
    const dup = await cli(['tunnel', 'create', '--name', 'json errors', '--json', '--data-dir', dataDir])
    assert.equal(dup.code, human.code)
    assert.equal(dup.code, 1)
    assert.equal(dup.stdout, '')
    assert.match(dup.stderr, /^\{.*\}\n$/)
    const { error } = JSON.parse(dup.stderr) as { error: { code: string; message: string } }
    assert.equal(error.code, 'TUN_ERR_TUNNEL_NAME_TAKEN')
    assert.equal(`apptunnel: ${error.message} [${error.code}]\n`, human.stderr, 'the same message a person reads')
    const missing = await cli(['tunnel', 'show', 'aaaaaaaaaaaaaaaa', '--json', '--data-dir', dataDir])
    assert.equal(missing.code, 1)
    assert.equal((JSON.parse(missing.stderr) as { error: { code: string } }).error.code, 'TUN_ERR_TUNNEL_NOT_FOUND')
    const unreachable = await cli(['tunnel', 'list', '--json', '--server', 'https://127.0.0.1:1', '--token', 'x'])
    assert.equal(unreachable.code, 1)
    assert.equal((JSON.parse(unreachable.stderr) as { error: { code: string } }).error.code, 'TUN_ERR_SERVER_UNREACHABLE')
  })

  test('the 101st tunnel of an org is refused with a clear error', async () => {
    const token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim()
    const target = { url: info.url, token, ca: await readFile(info.certificateFile, 'utf8') }
    const { json } = await callAdminApi(target, 'GET', '/api/v1/tunnels')
    const have = (json as { tunnels: unknown[] }).tunnels.length
    for (let i = have; i < 100; i++) await callAdminApi(target, 'POST', '/api/v1/tunnels', { name: `bulk ${i}` })
    const refused = await cli(['tunnel', 'create', '--name', 'one too many', '--data-dir', dataDir])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /100 tunnels.*\[TUN_ERR_TUNNEL_LIMIT_REACHED\]/)
  })

  test('tunnel delete via CLI; an agent reaches the server process; a frozen server is detected by ping; SIGTERM exits cleanly', async () => {
    // the org is full from the previous test: delete one through the CLI to make room
    const first = (JSON.parse((await cli(['tunnel', 'list', '--json', '--data-dir', dataDir])).stdout) as Array<{ id: string }>)[0]!
    const deleted = await cli(['tunnel', 'delete', first.id, '--data-dir', dataDir])
    assert.equal(deleted.code, 0, deleted.stderr)
    const made = await cli(['tunnel', 'create', '--name', 'frozen', '--json', '--data-dir', dataDir])
    assert.equal(made.code, 0, made.stderr)
    const created = JSON.parse(made.stdout) as { key: string; applicationLinkUrl: string }
    const agent = await startTestAgent(created.key, upstream.address)
    try {
      await agent.waitFor((s) => s.status === 'CONNECTED')
      const [host, port] = info.ingress.split(':')
      assert.equal(host, '127.0.0.1')
      const ok = await ingressRequest({ port: Number(port) }, new URL(created.applicationLinkUrl).host)
      assert.equal(ok.status, 200)
      server.kill('SIGSTOP')
      const lost = await agent.waitFor((s) => s.status === 'UNAVAILABLE', 5000)
      assert.match(lost.reason, /ping/)
      server.kill('SIGCONT')
      await agent.waitFor((s) => s.status === 'CONNECTED', 10_000)
    } finally {
      await agent.close()
    }
    server.kill('SIGTERM')
    const code = await new Promise<number | null>((r) => server.once('exit', (c) => r(c)))
    assert.equal(code, 0)
  })
})

test('apptunnel demo --check: a two-node instance connects and a request crosses the tunnel', async () => {
  const res = await cli(['demo', '--check'])
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /demo check: instance CONNECTED \(both nodes are connected \(4 sessions\)\); HTTP 200 through the tunnel: \{"host":"[a-z0-9]{16}\.localhost:\d+"/)
})

test('apptunnel demo whose ingress port is taken says so in one line and exits 1 (the parts already started are closed)', async () => {
  const blocker = createServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
  const port = (blocker.address() as AddressInfo).port
  try {
    const res = await cli(['demo', '--ingress-port', String(port)])
    assert.equal(res.code, 1, res.stderr)
    assert.equal(res.stdout, '')
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr)
    assert.match(res.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`), res.stderr)
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()))
  }
})
