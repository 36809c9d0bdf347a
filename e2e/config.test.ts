import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { waitForServerInfo } from '../src/testing/server-info.ts'

checkNoLeakedHandles()

/** `config verify` as automation runs it: exit code, and the problem lines of standard output. */
async function verify(dir: string, name: string, text: string, args: string[] = [], env: Record<string, string> = {}) {
  const file = join(dir, name)
  await writeFile(file, text)
  const r = await cli(['config', 'verify', '--config', file, ...args], env)
  return { ...r, file, lines: r.stdout.split('\n').filter((l) => l !== '') }
}

describe('configuration file, environment and flags', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-config-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('config verify: every kind of mistake in one go, one line each naming the field, its line, and what is allowed', async () => {
    const r = await verify(
      dir,
      'server.yaml',
      ['listen: 127.0.0.1:0', 'ingresListen: 127.0.0.1:0', 'logLevel: loud', 'pingIntervalMs: 0', 'maxHeadBytes: lots', 'metricsListen: nowhere', 'clusterAuthDisabled: maybe', ''].join('\n'),
      ['--side', 'server'],
    )
    assert.equal(r.code, 2, r.stderr)
    assert.equal(r.lines.length, 6, r.stdout)
    const line = (field: string) => r.lines.find((l) => l.startsWith(`${field}: `)) ?? assert.fail(`no line for ${field} in:\n${r.stdout}`)
    assert.equal(line('ingresListen'), `ingresListen: unknown option; did you mean "ingressListen"? (${r.file}:2)`)
    assert.equal(line('logLevel'), `logLevel: "loud" is not allowed: one of: fatal, error, warn, info, debug, trace, silent (${r.file}:3)`)
    assert.equal(line('pingIntervalMs'), `pingIntervalMs: 0 is out of range: allowed is an integer from 1 to 86400000 ms (${r.file}:4)`)
    assert.equal(line('maxHeadBytes'), `maxHeadBytes: expected an integer from 1024 to 1048576 bytes, got the string "lots" (${r.file}:5)`)
    assert.equal(line('metricsListen'), `metricsListen: "nowhere" is not HOST:PORT (e.g. 127.0.0.1:8443, port 0-65535) (${r.file}:6)`)
    assert.equal(line('clusterAuthDisabled'), `clusterAuthDisabled: expected true or false, got the string "maybe" (${r.file}:7)`)
    assert.match(r.stderr, /^apptunnel: .*server\.yaml: 6 problems \[TUN_ERR_CONFIG_INVALID\]\n$/)
  })

  test('config verify: YAML syntax errors carry their line; a missing file is one line; JSON is read too', async () => {
    const broken = await verify(dir, 'broken.yaml', 'listen: 127.0.0.1:0\n\tlogLevel: info\norgName: acme\n')
    assert.equal(broken.code, 2)
    assert.deepEqual(broken.lines, [`config: YAML syntax error: Tabs are not allowed as indentation (${broken.file}:2)`])
    const dup = await verify(dir, 'dup.yaml', 'listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n')
    assert.deepEqual(dup.lines, [`config: YAML syntax error: Map keys must be unique (${dup.file}:2)`])

    const missing = await cli(['config', 'verify', '--config', join(dir, 'nope.yaml')])
    assert.equal(missing.code, 2)
    assert.equal(missing.stdout, `config: cannot read ${join(dir, 'nope.yaml')}: no such file (ENOENT) (flag --config)\n`)

    const json = await verify(dir, 'agent.json', JSON.stringify({ upstream: '127.0.0.1:8081', key: 'atk1_AAAA', sessions: 40 }))
    assert.equal(json.code, 2)
    assert.deepEqual(json.lines, [`sessions: 40 is out of range: allowed is an integer from 1 to 16 (${json.file}:1)`])
  })

  test('config verify: exit 0 and one OK line; sections name their fields; --json for scripts', async () => {
    const ok = await verify(dir, 'ok.yaml', 'listen: 127.0.0.1:8443\ningressListen: 127.0.0.1:8080\norgName: acme\n')
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.deepEqual(ok.lines, [`OK: ${ok.file}: valid server configuration (taken for server from its options; --side chooses)`])

    const both = await verify(dir, 'both.yaml', 'server:\n  listen: 127.0.0.1:8443\nagent:\n  upstream: nowhere\n  sesions: 2\n  database: i.db\n  dataDir: d\n')
    assert.equal(both.code, 2)
    assert.deepEqual(both.lines.sort(), [
      `agent.sesions: unknown option; did you mean "sessions"? (${both.file}:5)`,
      `agent.upstream: "nowhere" is not HOST:PORT (e.g. 127.0.0.1:8443, port 0-65535) (${both.file}:4)`,
    ])

    const mixed = await verify(dir, 'mixed.yaml', 'server:\n  listen: 127.0.0.1:8443\nlogLevel: info\n')
    assert.deepEqual(mixed.lines, [`logLevel: a file with server: or agent: sections holds nothing else at the top level; put the option under its section (${mixed.file}:3)`])

    const asJson = await verify(dir, 'j.yaml', 'upstream: 127.0.0.1:8081\ndatabase: i.db\ndataDir: d\nlogLevel: chatty\n', ['--side', 'agent', '--json'])
    assert.equal(asJson.code, 2)
    const parsed = JSON.parse(asJson.stdout) as { ok: boolean; sides: string[]; problems: Array<{ field: string; source: string }> }
    assert.equal(parsed.ok, false)
    assert.deepEqual(parsed.sides, ['agent'])
    assert.deepEqual(parsed.problems.map((p) => [p.field, p.source]), [['logLevel', `${asJson.file}:4`]])
  })

  test('config verify: a YAML alias bomb is one config problem naming the file and line (exit 2), at verify and at start; a few aliases still work', async () => {
    // "billion laughs": nine lines whose nested aliases would expand to 9^9 strings
    const levels = 'abcdefghi'.split('')
    const bomb = levels.map((name, n) => `${name}: &${name} [${Array.from({ length: 9 }, () => (n === 0 ? '"lol"' : `*${levels[n - 1]}`)).join(',')}]`).join('\n') + '\n'
    const r = await verify(dir, 'bomb.yaml', bomb, ['--side', 'agent'])
    assert.equal(r.code, 2, r.stderr)
    assert.deepEqual(r.lines, [`config: YAML aliases (*name) expand to more than 100 nodes: refused as a resource exhaustion attack ("billion laughs"); write the values out (${r.file}:2)`])
    assert.equal(r.stderr, `apptunnel: ${r.file}: 1 problem [TUN_ERR_CONFIG_INVALID]\n`)
    const started = await cli(['agent', '--config', r.file])
    assert.equal(started.code, 2)
    assert.match(started.stderr, /^apptunnel: config: YAML aliases \(\*name\) expand to more than 100 nodes: .*bomb\.yaml:2\) \[TUN_ERR_CONFIG_INVALID\]\n$/)
    const shown = await cli(['config', 'show', '--config', r.file])
    assert.equal(shown.code, 2)
    assert.match(shown.stderr, /YAML aliases \(\*name\) expand to more than 100 nodes/)

    const fine = await verify(dir, 'aliases.yaml', 'agent:\n  upstream: &up 127.0.0.1:8081\n  database: &db i.db\n  dataDir: d\nserver:\n  listen: 127.0.0.1:8443\n  database: *db\n')
    assert.equal(fine.code, 0, fine.stdout + fine.stderr)
  })

  test('config verify: port 0 in agent.upstream is reported together with type errors and missing options of the same file', async () => {
    const r = await verify(dir, 'port0.yaml', 'agent:\n  upstream: 127.0.0.1:0\n  sessions: lots\n  logLevel: loud\n  consoleListen: 127.0.0.1:0\n')
    assert.equal(r.code, 2, r.stderr)
    assert.deepEqual(r.lines.sort(), [
      `agent.consoleListen: the console needs the instance database (--database URL or SQLite file) (${r.file}:5)`,
      `agent.logLevel: "loud" is not allowed: one of: fatal, error, warn, info, debug, trace, silent (${r.file}:4)`,
      `agent.sessions: expected an integer from 1 to 16, got the string "lots" (${r.file}:3)`,
      `agent.upstream: the port must not be 0 (${r.file}:2)`,
      'key: a security key is required (--key, --key-file or APPTUNNEL_KEY), or an instance database (--database) to read it from (not set)',
    ])
    assert.match(r.stderr, /port0\.yaml: 5 problems \[TUN_ERR_CONFIG_INVALID\]\n$/)
  })

  test('environment: typed by the schema, above the file; a mistyped APPTUNNEL_ variable is refused with a suggestion', async () => {
    const file = 'upstream: 127.0.0.1:8081\ndatabase: i.db\ndataDir: d\nsessions: 3\n'
    const wrongType = await verify(dir, 'env.yaml', file, ['--side', 'agent'], { APPTUNNEL_SESSIONS: 'many' })
    assert.equal(wrongType.code, 2)
    assert.deepEqual(wrongType.lines, ['sessions: expected an integer from 1 to 16, got the string "many" (env APPTUNNEL_SESSIONS)'])
    const typo = await verify(dir, 'env2.yaml', 'listen: 127.0.0.1:8443\n', ['--side', 'server'], { APPTUNNEL_INGRES_LISTEN: '127.0.0.1:1', APPTUNNEL_UPSTREAM: 'ignored by the server' })
    assert.equal(typo.code, 2)
    assert.deepEqual(typo.lines, ['APPTUNNEL_INGRES_LISTEN: unknown environment variable; did you mean APPTUNNEL_INGRESS_LISTEN? (env APPTUNNEL_INGRES_LISTEN)'])

    const shown = await cli(['config', 'show', '--config', join(dir, 'env.yaml'), '--side', 'agent'], { APPTUNNEL_SESSIONS: '4', APPTUNNEL_KEY: 'atk1_secret-never-printed', APPTUNNEL_PROXY: 'http://u:hunter2@127.0.0.1:3128' })
    // the key does not decode, so show refuses it as a problem of `key` without echoing it
    assert.equal(shown.code, 2)
    assert.match(shown.stderr, /key: security key is malformed: .* \(env APPTUNNEL_KEY\)/)
    assert.doesNotMatch(shown.stderr + shown.stdout, /secret-never-printed|hunter2/)
    const shownOk = await cli(['config', 'show', '--config', join(dir, 'env.yaml'), '--side', 'agent'], { APPTUNNEL_SESSIONS: '4', APPTUNNEL_PROXY: 'http://u:hunter2@127.0.0.1:3128' })
    assert.equal(shownOk.code, 0, shownOk.stderr)
    assert.match(shownOk.stdout, /^sessions: 4 {2}# env APPTUNNEL_SESSIONS$/m)
    assert.match(shownOk.stdout, new RegExp(`^upstream: "127\\.0\\.0\\.1:8081" {2}# ${join(dir, 'env.yaml').replace(/[.]/g, '\\.')}:1$`, 'm'))
    assert.match(shownOk.stdout, /^proxy: "http:\/\/u:<redacted>@127\.0\.0\.1:3128" {2}# env APPTUNNEL_PROXY$/m)
    assert.match(shownOk.stdout, /^connectTimeoutMs: 10000 {2}# default$/m)
    assert.doesNotMatch(shownOk.stdout, /hunter2/)
  })

  test('server and agent refuse a bad configuration at start, exit 2, every problem on its own line with its source', async () => {
    const file = join(dir, 'bad-start.yaml')
    await writeFile(file, 'listen: 127.0.0.1:0\nlogLevel: loud\nmaxTunnelsPerOrg: 0\n')
    const r = await cli(['server', '--config', file, '--data-dir', join(dir, 'never'), '--ping-interval-ms', '0'])
    assert.equal(r.code, 2)
    const lines = r.stderr.trimEnd().split('\n')
    assert.equal(lines[0], 'apptunnel: invalid server configuration, 3 problems:')
    assert.ok(lines.some((l) => l.startsWith(`  logLevel: "loud" is not allowed: one of: fatal, error, warn, info, debug, trace, silent (${file}:2)`)), r.stderr)
    assert.ok(lines.some((l) => l.startsWith(`  maxTunnelsPerOrg: 0 is out of range: allowed is an integer from 1 to 100000 (${file}:3)`)), r.stderr)
    assert.ok(lines.some((l) => l.startsWith('  pingIntervalMs: 0 is out of range: allowed is an integer from 1 to 86400000 ms (flag --ping-interval-ms)')), r.stderr)
    assert.match(r.stderr, / \[TUN_ERR_CONFIG_INVALID\]\n$/)

    const agent = await cli(['agent'])
    assert.equal(agent.code, 2)
    // the missing key is reported with the missing upstream, not only once upstream is fixed
    assert.match(agent.stderr, /^apptunnel: invalid agent configuration, 2 problems:\n {2}upstream: required: a string \(not set\)\n {2}key: a security key is required .*\(not set\) \[TUN_ERR_CONFIG_INVALID\]\n$/)
  })

  test('apptunnel server --config FILE starts on the file\'s listen addresses; env beats the file, flags beat both', async () => {
    const dataDir = join(dir, 'server-data')
    const file = join(dir, 'start.yaml')
    // logLevel in the file is wrong: the server only starts because the environment overrides it
    await writeFile(file, `dataDir: ${JSON.stringify(dataDir)}\nlisten: 127.0.0.1:0\ningressListen: 127.0.0.1:0\ningressDomain: from-file.test\nlogLevel: loud\n`)
    const server = spawn(process.execPath, [CLI, 'server', '--config', file, '--ingress-domain', 'from-flag.test'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, APPTUNNEL_LOG_LEVEL: 'warn' },
    })
    let stderr = ''
    server.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise((r) => server.once('exit', r))
    try {
      const info = await waitForServerInfo(dataDir, { output: () => stderr, exited: () => server.exitCode !== null })
      assert.match(info.url, /^https:\/\/127\.0\.0\.1:\d+/)
      assert.doesNotMatch(info.url, /:8443/)
      assert.match(info.ingress, /127\.0\.0\.1:\d+/)
      await waitFor(() => /apptunnel server ready/.test(stderr), 10_000, () => stderr)
      assert.match(stderr, /tunnels at http:\/\/<tunnel-id>\.from-flag\.test:\d+\//)
    } finally {
      if (server.exitCode === null) server.kill('SIGTERM')
      await exited
    }
  })
})

async function waitFor(ok: () => boolean, timeoutMs: number, context: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out; output so far:\n${context()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
