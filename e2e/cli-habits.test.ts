import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'

// The habits a person and a script expect of a command-line tool: shell completion, NO_COLOR,
// errors a script can parse with --json, a short answer to a typo, and a start-up banner that says
// where to sign in. Everything runs the real `apptunnel` binary, in the real shells.

checkNoLeakedHandles()

for (const tool of ['bash', 'zsh', 'fish', 'script']) {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
  assert.ok(found, `these tests need ${tool} (Debian: ${tool === 'script' ? 'bsdutils' : tool}); .ci/run installs it`)
}

/** Runs `shell args…` with `input` on standard input; resolves with its exit code and output. */
function shell(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env, timeout: 30_000 })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
    // A shell that does not read its input (bash -n) may exit before the write: that is no failure.
    child.stdin.on('error', () => {})
    if (options.input === undefined) child.stdin.end()
    else child.stdin.end(options.input)
  })
}

describe('apptunnel completion', () => {
  let dir: string
  const scripts: Record<string, string> = {}

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-completion-'))
    for (const sh of ['bash', 'zsh', 'fish']) {
      const r = await cli(['completion', sh])
      assert.equal(r.code, 0, r.stderr)
      scripts[sh] = join(dir, `apptunnel.${sh}`)
      await writeFile(scripts[sh]!, r.stdout)
    }
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('bash: valid bash (bash -n); sourced, it registers itself and completes subcommands, options, choices and files', async () => {
    const syntax = await shell('bash', ['-n', scripts.bash!])
    assert.equal(syntax.code, 0, syntax.stderr)
    // What bash does on Tab: set COMP_WORDS/COMP_CWORD and call the function `complete -p` names.
    const probe = `
      source ${JSON.stringify(scripts.bash)}
      complete -p apptunnel
      fn=$(complete -p apptunnel | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')
      while IFS= read -r line; do
        eval "COMP_WORDS=($line)"
        COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
        COMPREPLY=()
        "$fn"
        echo "\${COMPREPLY[*]}"
      done`
    const lines = [
      `apptunnel se`,
      `apptunnel server --lis`,
      `apptunnel tunnel product ''`,
      `apptunnel config verify --side ''`,
      `apptunnel completion ''`,
      // the value of --name is not a subcommand, even when it is spelled like one
      `apptunnel tunnel create --name server --j`,
      `apptunnel help tun`,
      `apptunnel server --tls-cert ${join(dir, 'apptunnel.b')}`,
    ]
    const r = await shell('bash', ['--norc', '--noprofile', '-c', probe], { input: lines.join('\n') + '\n' })
    assert.equal(r.code, 0, r.stderr)
    const [registration, ...answers] = r.stdout.trimEnd().split('\n')
    assert.match(registration!, /^complete -F _apptunnel apptunnel$/)
    assert.deepEqual(answers, ['server', '--listen', 'add list remove help', 'server agent', 'bash zsh fish', '--json', 'tunnel', scripts.bash])
  })

  test('zsh: valid zsh (zsh -n); in an interactive zsh, Tab lists subcommands and options with their descriptions', async () => {
    const syntax = await shell('zsh', ['-n', scripts.zsh!])
    assert.equal(syntax.code, 0, syntax.stderr)
    // zsh completes only in its line editor: drive an interactive zsh on a pseudo-terminal (zpty),
    // load the script as a user would (compinit, then source), press Tab, read the screen.
    const driver = (typed: string, expect: string) => `
      zmodload zsh/zpty
      zpty z 'zsh -f -i'
      zpty -w z 'PS1="%% "; autoload -U compinit; compinit -u -d ${dir}/zcompdump; source ${scripts.zsh}; echo SOURCED""-OK'
      zpty -r z out '*SOURCED-OK*'
      zpty -w -n z $'${typed}\\t'
      zpty -r z out ${JSON.stringify(expect)}
      print -r -- "$out"
      zpty -d z`
    const listed = await shell('zsh', ['-f', '-c', driver('apptunnel tunnel product ', "*remove*--*its credential*")])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /add +-- allow a caller/)
    assert.match(listed.stdout, /list +-- list a tunnel's linked products/)
    const options = await shell('zsh', ['-f', '-c', driver('apptunnel server --ingress-', '*--ingress-public-url*--*')])
    assert.equal(options.code, 0, options.stderr)
    assert.match(options.stdout, /--ingress-domain +-- Tunnels answer at <tunnel-id>\.<ingressDomain>/)
    assert.match(options.stdout, /--ingress-listen +-- Plain-HTTP ingress of the application link URLs/)
  })

  test('fish: valid fish (fish --no-execute); complete -C offers subcommands, options, choices, and skips option values', async () => {
    const syntax = await shell('fish', ['--no-execute', scripts.fish!])
    assert.equal(syntax.code, 0, syntax.stderr)
    const ask = (line: string) => `complete -C ${JSON.stringify(line)} | string replace -r '\\t.*' ''; echo ---`
    const r = await shell('fish', [
      '--no-config',
      '-c',
      [`source ${scripts.fish}`, ask('apptunnel se'), ask('apptunnel server --lis'), ask('apptunnel tunnel product '), ask('apptunnel config verify --side '), ask('apptunnel tunnel create --name server --j')].join('; '),
    ])
    assert.equal(r.code, 0, r.stderr)
    const answers = r.stdout.split('---\n').slice(0, -1).map((a) => a.trim().split('\n').sort().join(' '))
    assert.deepEqual(answers, ['server', '--listen', 'add help list remove', 'agent server', '--json'])
  })

  test('an unknown shell is a usage error naming the three', async () => {
    const r = await cli(['completion', 'csh'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^apptunnel: .*'csh' is invalid.*bash, zsh, fish\.\nRun 'apptunnel completion --help' for the options\.\n$/)
  })
})

describe('usage errors', () => {
  test("an unknown option is one line with a did-you-mean and the command's --help hint, exit 2, not the whole help", async () => {
    const r = await cli(['server', '--lisen', '127.0.0.1:0'])
    assert.equal(r.code, 2)
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, "apptunnel: unknown option '--lisen' for 'server' (did you mean --listen?)\nRun 'apptunnel server --help' for the options.\n")
    const nested = await cli(['tunnel', 'product', 'add', 'x', '--name', 'n', '--nmae', 'n'])
    assert.equal(nested.code, 2)
    assert.equal(nested.stderr, "apptunnel: unknown option '--nmae' for 'tunnel product add' (did you mean --name?)\nRun 'apptunnel tunnel product add --help' for the options.\n")
  })

  test('an unknown command gets a did-you-mean and the --help hint of the level it was typed at, exit 2', async () => {
    const top = await cli(['sever'])
    assert.equal(top.code, 2)
    assert.equal(top.stderr, "apptunnel: unknown command 'sever' (did you mean server?)\nRun 'apptunnel --help' for the commands.\n")
    const sub = await cli(['tunnel', 'lst'])
    assert.equal(sub.code, 2)
    assert.equal(sub.stderr, "apptunnel: unknown command 'lst' (did you mean list?)\nRun 'apptunnel tunnel --help' for the commands.\n")
  })

  test('with --json a usage error is one JSON object on stderr, exit code unchanged (2)', async () => {
    for (const args of [
      ['tunnel', 'create', '--json'],
      ['tunnel', 'list', '--json', '--jsn'],
      ['key', 'status', '--json'],
    ]) {
      const r = await cli(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stdout, '')
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`)
      const parsed = JSON.parse(r.stderr) as { error: { code: string; message: string } }
      assert.deepEqual(Object.keys(parsed), ['error'])
      assert.deepEqual(Object.keys(parsed.error), ['code', 'message'])
      assert.equal(parsed.error.code, 'TUN_ERR_CLI_USAGE')
    }
    const missing = JSON.parse((await cli(['tunnel', 'create', '--json'])).stderr) as { error: { message: string } }
    assert.equal(missing.error.message, "required option '--name <name>' not specified")
  })
})

interface Launched {
  output(): string
  waitFor(pattern: RegExp, what: string): Promise<void>
  stop(): Promise<number | null>
  kill(): void
}

/** `apptunnel server` on a pseudo-terminal (util-linux `script`) or with stderr on a pipe. */
function launchServer(dataDir: string, onTerminal: boolean, env: Record<string, string> = {}): Launched {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, SHELL: '/bin/sh', ...env }
  delete childEnv['APPTUNNEL_LOG_FORMAT']
  if (!('NO_COLOR' in env)) delete childEnv['NO_COLOR']
  const args = [CLI, 'server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0']
  let child: ChildProcess
  let output = ''
  if (onTerminal) {
    const command = `exec ${[process.execPath, ...args].map((s) => `'${s.replaceAll("'", "'\\''")}'`).join(' ')}`
    child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv })
    child.stdout!.on('data', (d: Buffer) => (output += d.toString('utf8')))
  } else {
    child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv })
  }
  child.stderr!.on('data', (d: Buffer) => (output += d.toString('utf8')))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    output: () => output,
    async waitFor(pattern, what) {
      await eventually(() => pattern.test(output) || child.exitCode !== null, what, 30_000)
      assert.match(output, pattern, `${what}; the process exited with ${child.exitCode}:\n${output}`)
    },
    stop() {
      if (onTerminal) child.stdin!.write('\u0003')
      else child.kill('SIGTERM')
      return exited
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}

function httpsStatus(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

const SGR = /\u001b\[[0-9;]*m/

describe('apptunnel server start: the ready banner, and colour only where it belongs', () => {
  let root: string
  const running: Launched[] = []
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-banner-'))
  })
  after(async () => {
    for (const r of running) r.kill()
    await rm(root, { recursive: true, force: true })
  })

  test('the banner and the "tunnel server listening" log line give the console URL and where the first credentials are', async () => {
    const dataDir = join(root, 'pipe')
    const server = launchServer(dataDir, false)
    running.push(server)
    await server.waitFor(/create a tunnel: /, 'the server is ready')
    const out = server.output()
    const passwordFile = join(dataDir, 'console-admin-password')
    const tokenFile = join(dataDir, 'admin-token')
    const consoleUrl = /^ {2}console: (https:\/\/127\.0\.0\.1:\d+\/console\/)$/m.exec(out)?.[1]
    assert.ok(consoleUrl !== undefined, out)
    assert.ok(out.includes(`    sign in as admin, first password in ${passwordFile} (change it: apptunnel admin set-password --data-dir ${dataDir})\n`), out)
    assert.ok(out.includes(`    admin API token in ${tokenFile}\n`), out)
    const listening = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e['msg'] === 'tunnel server listening')
    assert.ok(listening !== undefined, out)
    assert.equal(listening['consoleUrl'], consoleUrl)
    assert.equal(listening['consoleUser'], 'admin')
    assert.equal(listening['consolePasswordFile'], passwordFile)
    assert.equal(listening['adminTokenFile'], tokenFile)
    // the URL is the console, and the file holds its password (which never reaches the output)
    const info = JSON.parse(await readFile(join(dataDir, 'server.json'), 'utf8')) as { certificateFile: string }
    assert.equal(await httpsStatus(consoleUrl, await readFile(info.certificateFile, 'utf8')), 200)
    const password = (await readFile(passwordFile, 'utf8')).trim()
    assert.equal((await stat(passwordFile)).mode & 0o777, 0o600)
    assert.ok(!out.includes(password))
    assert.equal(await server.stop(), 0, server.output())
  })

  test('on a terminal: the banner, and coloured log lines; with NO_COLOR=1 the same lines without a colour code', async () => {
    const coloured = launchServer(join(root, 'tty'), true)
    running.push(coloured)
    await coloured.waitFor(/create a tunnel: /, 'the server is ready on a terminal')
    assert.match(coloured.output(), /\r?\n {2}console: https:\/\/127\.0\.0\.1:\d+\/console\/\r?\n {4}sign in as admin, first password in /)
    assert.match(coloured.output(), SGR, 'a terminal gets colour')
    assert.match(coloured.output(), /INFO .*tunnel server listening/)
    assert.equal(await coloured.stop(), 0, coloured.output())

    const plain = launchServer(join(root, 'tty'), true, { NO_COLOR: '1' })
    running.push(plain)
    await plain.waitFor(/create a tunnel: /, 'the server is ready on a terminal with NO_COLOR')
    assert.doesNotMatch(plain.output(), SGR, 'NO_COLOR: no colour code at all')
    assert.match(plain.output(), /INFO +tunnel server listening/, 'still the readable lines of a terminal')
    assert.equal(await plain.stop(), 0, plain.output())
  })
})
