import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { loadAgentConfig } from '../src/config/agent-config.ts'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestServer, type SimpleResponse, type TestServer } from '../src/testing/tunnel-harness.ts'

// Migrations and drains of the real `apptunnel server` and `apptunnel agent` processes, once on a
// terminal (a pseudo-terminal from util-linux `script`, stopped with Ctrl-C as a person stops it)
// and once with stderr redirected (stopped with SIGTERM, as a service manager stops it).

checkNoLeakedHandles()

const SCRIPT = spawnSync('script', ['--version'], { encoding: 'utf8' })
assert.equal(SCRIPT.status, 0, 'these tests need util-linux `script` (Debian: bsdutils) to give the CLI a terminal')

/** Longest a started process may take to get ready, or to drain and exit. */
const PROCESS_DEADLINE_MS = 30_000
/** The in-flight request the drain waits for: long enough for the elapsed seconds to move on. */
const SLOW_MS = 2_500

interface Running {
  /** what the process wrote to stderr (on a terminal: to the terminal, stdout included) */
  output(): string
  waitFor(pattern: RegExp, what: string): Promise<void>
  /** Ctrl-C on the terminal; SIGTERM otherwise */
  stop(): void
  /** resolves with the exit code */
  readonly exited: Promise<number | null>
  kill(): void
}

const shellQuote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`

/** Starts the CLI with `args`, on a pseudo-terminal or with stderr on a pipe. */
function launch(args: string[], onTerminal: boolean): Running {
  const env: NodeJS.ProcessEnv = { ...process.env, SHELL: '/bin/sh' }
  delete env['APPTUNNEL_LOG_FORMAT']
  let child: ChildProcess
  let output = ''
  if (onTerminal) {
    // -e: script exits with the command's code; -f: every write reaches us at once; exec: Ctrl-C reaches node itself.
    const command = `exec ${[process.execPath, CLI, ...args].map(shellQuote).join(' ')}`
    child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env })
    child.stdout!.on('data', (d: Buffer) => (output += d.toString('utf8')))
    child.stderr!.on('data', (d: Buffer) => (output += d.toString('utf8')))
  } else {
    child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env })
    child.stderr!.on('data', (d: Buffer) => (output += d.toString('utf8')))
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    output: () => output,
    async waitFor(pattern, what) {
      await eventually(() => pattern.test(output) || child.exitCode !== null, what, PROCESS_DEADLINE_MS)
      assert.match(output, pattern, `${what}; the process exited with ${child.exitCode}:\n${output}`)
    },
    stop() {
      if (onTerminal) child.stdin!.write('\u0003')
      else child.kill('SIGTERM')
    },
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}

/** Every progress text drawn in place ("\r", text, erase to the end of the line), in order. */
function progressFrames(output: string): string[] {
  return [...output.matchAll(/\r([^\r\n\u001b]+)\u001b\[K/g)].map((m) => m[1]!)
}

const withoutColors = (s: string): string => s.replace(/\u001b\[[0-9;]*m/g, '')

/** Stops the process while `inFlight` runs, and waits for both; the process must exit 0. */
async function stopDuringRequest(running: Running, upstream: TestUpstream, inFlight: () => Promise<SimpleResponse>): Promise<SimpleResponse> {
  const seen = upstream.seen.length
  const answer = inFlight()
  await eventually(() => upstream.seen.length > seen, 'the slow request reached the app')
  running.stop()
  const [response, code] = await Promise.all([answer, running.exited])
  assert.equal(code, 0, running.output())
  return response
}

describe('long operations show progress on a terminal, and only there', () => {
  let root: string
  let upstream: TestUpstream
  const running: Running[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-progress-'))
    upstream = await startTestUpstream()
  })

  after(async () => {
    for (const r of running) r.kill()
    await Promise.all(running.map((r) => r.exited))
    await upstream?.close()
    await rm(root, { recursive: true, force: true })
  })

  /** `apptunnel server` on a new data directory, an agent connected to it, a request in flight when it is stopped. */
  async function serverDrain(onTerminal: boolean): Promise<{ output: string; response: SimpleResponse }> {
    const dataDir = join(root, `server-${onTerminal ? 'tty' : 'pipe'}`)
    const server = launch(['server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0'], onTerminal)
    running.push(server)
    let agent: TunnelAgent | undefined
    try {
      await server.waitFor(/apptunnel server ready/, 'the server started')
      const info = JSON.parse(await readFile(join(dataDir, 'server.json'), 'utf8')) as { ingress: string }
      const created = await cli(['tunnel', 'create', '--name', 'progress', '--data-dir', dataDir, '--json'])
      assert.equal(created.code, 0, created.stderr)
      const tunnel = JSON.parse(created.stdout) as { key: string; applicationLinkUrl: string }
      agent = await startAgent(loadAgentConfig({ key: tunnel.key, upstream: upstream.address, nodeId: 'progress-node', reconnectInitialMs: 100, reconnectMaxMs: 1000, logLevel: 'silent' }))
      await agent.waitFor((s) => s.status === 'CONNECTED' && s.sessions === 2)
      const response = await stopDuringRequest(server, upstream, () =>
        ingressRequest({ port: Number(info.ingress.split(':').pop()) }, new URL(tunnel.applicationLinkUrl).host, { path: `/slow?ms=${SLOW_MS}` }),
      )
      return { output: server.output(), response }
    } finally {
      await agent?.close()
    }
  }

  /** `apptunnel agent` with a new instance database, connected to an in-process server, stopped with a request in flight. */
  async function agentDrain(onTerminal: boolean): Promise<{ output: string; response: SimpleResponse }> {
    const server: TestServer = await startTestServer()
    try {
      const tunnel = await server.createTunnel('progress')
      const side = onTerminal ? 'tty' : 'pipe'
      const args = ['agent', '--key', tunnel.key, '--upstream', upstream.address, '--sessions', '1', '--database', join(root, `instance-${side}.db`), '--data-dir', join(root, `agent-${side}`)]
      const agent = launch(args, onTerminal)
      running.push(agent)
      await eventually(() => server.registry.isConnected(tunnel.id) || agent.output().includes('apptunnel:'), 'the agent connected', PROCESS_DEADLINE_MS)
      assert.ok(server.registry.isConnected(tunnel.id), agent.output())
      const response = await stopDuringRequest(agent, upstream, () => ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: `/slow?ms=${SLOW_MS}` }))
      return { output: agent.output(), response }
    } finally {
      await server.dispose()
    }
  }

  test('server on a terminal: the migrations, then the drain counting the connection and sessions left and the seconds, erased at the end', async () => {
    const { output, response } = await serverDrain(true)
    assert.equal(response.status, 200, 'the request in flight finished during the drain')
    assert.equal(response.body.toString(), 'slow')
    const frames = progressFrames(output)
    assert.match(frames[0] ?? '', /^migrating database: 1\/\d+ 0001-initial$/, output)
    assert.ok(frames.includes('draining: 1 connection, 2 sessions left … 0 s'), `frames: ${JSON.stringify(frames)}`)
    assert.ok(frames.includes('draining: 1 connection, 2 sessions left … 1 s'), `the elapsed seconds move on: ${JSON.stringify(frames)}`)
    assert.ok(output.lastIndexOf('\r\u001b[K') > output.lastIndexOf('draining:'), 'the progress line is erased when the drain ends')
    assert.match(withoutColors(output), /draining: .*\r\u001b\[K\d\d:\d\d:\d\d\.\d{3} +INFO +agent-gateway +agent session closed/, 'a line logged during the drain')
    assert.doesNotMatch(output, /\r[^\r\n\u001b]+\u001b\[K(?!\r)/, 'goes above the progress line, never glued to its end')
    const lines = withoutColors(output)
    assert.match(lines, /INFO +database migrated +migrations=\["0001-initial",/, 'the log line that stays on screen')
    assert.match(lines, /INFO +drained +elapsedMs=\d+/)
  })

  test('agent on a terminal: the instance database migrations, then the drain of its one session', async () => {
    const { output, response } = await agentDrain(true)
    assert.equal(response.status, 200, 'the request in flight finished during the drain')
    const frames = progressFrames(output)
    assert.match(frames[0] ?? '', /^migrating database: 1\/\d+ 0001-initial$/, output)
    assert.ok(frames.includes('draining: 1 connection, 1 session left … 0 s'), `frames: ${JSON.stringify(frames)}`)
    assert.ok(frames.includes('draining: 1 connection, 1 session left … 1 s'), `the elapsed seconds move on: ${JSON.stringify(frames)}`)
    assert.ok(output.lastIndexOf('\r\u001b[K') > output.lastIndexOf('draining:'), 'the progress line is erased when the drain ends')
  })

  for (const [name, scenario] of [
    ['server', serverDrain],
    ['agent', agentDrain],
  ] as const) {
    test(`${name} with stderr redirected: no progress, no control character, only JSON log lines about the migrations and the drain`, async () => {
      const { output, response } = await scenario(false)
      assert.equal(response.status, 200)
      assert.doesNotMatch(output, /migrating database:|draining:/)
      assert.doesNotMatch(output, /[\r\u001b]/, 'not a carriage return nor an escape sequence')
      const messages = output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
      for (const msg of ['database migrated', 'draining', 'drained']) assert.ok(messages.includes(msg), `a "${msg}" line: ${output}`)
    })
  }
})
