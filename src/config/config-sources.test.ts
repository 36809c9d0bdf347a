import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { parseConfigText } from './config-yaml.ts'
import { environmentLayer, loadConfigFromSources, NON_OPTION_VARIABLES, optionsOfSide, type ConfigLayer } from './config-sources.ts'
import { configError } from '../testing/config-error.ts'

const flags = (values: Record<string, unknown>): ConfigLayer => ({ values, sources: Object.fromEntries(Object.keys(values).map((k) => [k, `flag --${k}`])) })
const none: ConfigLayer = { values: {}, sources: {} }

test('precedence: flags > environment > file > host defaults > schema defaults', () => {
  const file = parseConfigText('upstream: 127.0.0.1:1\ndatabase: i.db\ndataDir: d\nsessions: 3\nproxy: http://file.test:3128\nmaxStreams: 7\n', 'a.yaml')
  const host: ConfigLayer = { values: { proxy: 'http://host.test:3128', noProxy: '.host.test' }, sources: { proxy: 'env HTTPS_PROXY', noProxy: 'env NO_PROXY' } }
  const { config, input } = loadConfigFromSources('agent', { file, env: { APPTUNNEL_SESSIONS: '4', APPTUNNEL_MAX_STREAMS: '9' }, flags: flags({ maxStreams: 11 }), hostDefaults: host })
  assert.equal(config.maxStreams, 11)
  assert.equal(config.sessions, 4)
  assert.equal(config.proxy?.proxy.host, 'file.test')
  assert.deepEqual(input.values['noProxy'], '.host.test')
  assert.equal(config.connectTimeoutMs, 10_000)
  assert.deepEqual([input.sources['maxStreams'], input.sources['sessions'], input.sources['proxy'], input.sources['upstream']], ['flag --maxStreams', 'env APPTUNNEL_SESSIONS', 'a.yaml:5', 'a.yaml:1'])
})

test('environment: typed by the schema; the other side\'s options and the CLI\'s own variables are let through', () => {
  const { layer, issues } = environmentLayer('server', {
    APPTUNNEL_CLUSTER_AUTH_DISABLED: 'yes',
    APPTUNNEL_MAX_TUNNELS_PER_ORG: '12',
    APPTUNNEL_UPSTREAM: '127.0.0.1:1',
    APPTUNNEL_TOKEN: 't',
    APPTUNNEL_TEST_PG: 'postgres://x',
    APPTUNNEL_LISTN: '127.0.0.1:1',
    PATH: '/bin',
  })
  assert.deepEqual(layer.values, { clusterAuthDisabled: true, maxTunnelsPerOrg: 12 })
  assert.deepEqual(issues.map((i) => i.message), ['unknown environment variable; did you mean APPTUNNEL_LISTEN?'])
})

test('a sectioned file gives each side its own section; stray top-level keys and non-mappings are refused', () => {
  const file = parseConfigText('server:\n  orgName: acme\nagent:\n  upstream: 127.0.0.1:1\n  key: atk1_x\n', 's.yaml')
  assert.equal(loadConfigFromSources('server', { file, env: {}, flags: none }).config.orgName, 'acme')
  const onlyAgent = parseConfigText('agent:\n  upstream: 127.0.0.1:1\n', 'o.yaml')
  assert.equal(loadConfigFromSources('server', { file: onlyAgent, env: {}, flags: none }).config.orgName, 'default')
  assert.match(configError(() => parseConfigText('server:\n  orgName: a\norgName: b\n', 'm.yaml')), /orgName: a file with server: or agent: sections holds nothing else .* \(m\.yaml:3\)/)
  assert.match(configError(() => parseConfigText('- listen\n', 'l.yaml')), /config: the file must hold a mapping of options/)
  assert.match(configError(() => parseConfigText('agent: [1]\n', 'n.yaml')), /agent: the agent: section must be a mapping/)
  assert.deepEqual(parseConfigText('', 'e.yaml'), { path: 'e.yaml', kind: 'flat', options: { values: {}, lines: {} } })
})

test('problems from every source at once, each with its source; cross-field problems say "not set" where nothing was given', () => {
  const file = parseConfigText('upstream: 127.0.0.1:1\nlogLevel: 3\n', 'a.yaml')
  const msg = configError(() => loadConfigFromSources('agent', { file, env: { APPTUNNEL_SESIONS: '2' }, flags: flags({ sessions: 0 }) }))
  assert.match(msg, /APPTUNNEL_SESIONS: unknown environment variable; did you mean APPTUNNEL_SESSIONS\?/)
  assert.match(msg, /logLevel: 3 is not allowed: one of: fatal, .* \(a\.yaml:2\)/)
  assert.match(msg, /sessions: 0 is out of range: allowed is an integer from 1 to 16 \(flag --sessions\)/)
  const crossField = configError(() => loadConfigFromSources('agent', { file: parseConfigText('upstream: 127.0.0.1:1\n', 'b.yaml'), env: {}, flags: none }))
  assert.match(crossField, /^key: a security key is required .* \(not set\)$/)
})

test('every APPTUNNEL_* variable the sources read is an option or listed as let through (else starting would refuse it)', () => {
  const src = new URL('..', import.meta.url).pathname
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []))
  const options = new Set(['server', 'agent'].flatMap((side) => optionsOfSide(side as 'server').map((o) => o.env)))
  const read = new Set(files(src).flatMap((f) => readFileSync(f, 'utf8').match(/APPTUNNEL_[A-Z0-9_]+/g) ?? []))
  const unlisted = [...read].filter((name) => !options.has(name) && !NON_OPTION_VARIABLES.has(name))
  assert.deepEqual(unlisted, [], 'add these to NON_OPTION_VARIABLES in src/config/config-sources.ts')
})
