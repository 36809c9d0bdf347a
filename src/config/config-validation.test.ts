import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadAgentConfig } from './agent-config.ts'
import { loadServerConfig } from './server-config.ts'
import { configError } from '../testing/config-error.ts'

test('server config: defaults, and every problem named with its field at once', () => {
  const c = loadServerConfig({})
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8443 })
  assert.deepEqual(c.ingressListen, { host: '127.0.0.1', port: 8080 })
  assert.equal(c.maxTunnelsPerOrg, 100)
  assert.ok(Object.isFrozen(c))
  const msg = configError(() => loadServerConfig({ pingIntervalMs: -5, logLevel: 'loud' as 'info' }))
  assert.match(msg, /pingIntervalMs/)
  assert.match(msg, /logLevel/)
  assert.match(configError(() => loadServerConfig({ listenn: '1:2' } as object)), /listenn/)
  assert.match(configError(() => loadServerConfig({ listen: 'nonsense' })), /listen: "nonsense" is not HOST:PORT/)
  assert.match(configError(() => loadServerConfig({ tlsCertFile: 'a.pem', logLevel: 'loud' as 'info' })), /logLevel: .*tlsCertFile and tlsKeyFile/s)
  assert.match(configError(() => loadServerConfig({ publicUrl: 'http://tunnel.example.test' })), /publicUrl: must be an https:\/\/ URL/)
})

test('agent config: upstream port 0 and unknown keys are refused; a malformed key is a key error', () => {
  assert.match(configError(() => loadAgentConfig({ key: 'k', upstream: '127.0.0.1:0' })), /upstream: the port must not be 0/)
  assert.match(configError(() => loadAgentConfig({ key: 'k', upstream: '127.0.0.1:1', sesions: 2 } as unknown as Parameters<typeof loadAgentConfig>[0])), /sesions/)
  assert.throws(() => loadAgentConfig({ key: 'atk1_AAAA', upstream: '127.0.0.1:1' }), { code: 'TUN_ERR_KEY_MALFORMED' })
  assert.match(configError(() => loadAgentConfig({ upstream: '127.0.0.1:1' })), /key: a security key is required .* or an instance database/)
  assert.match(configError(() => loadAgentConfig({ upstream: '127.0.0.1:1', database: 'i.db' })), /dataDir: a node of an instance needs a stable id/)
  assert.match(configError(() => loadAgentConfig({ upstream: '127.0.0.1:1', database: 'i.db', sessions: 0 } as never)), /sessions/)
  assert.match(configError(() => loadAgentConfig({ upstream: '127.0.0.1:1', database: 'i.db', nodeId: 'n', consoleListen: '127.0.0.1:0' })), /consoleListen: the console needs --data-dir/)
  // checks across options run even when single options are wrong, so one pass lists everything
  const all = configError(() => loadAgentConfig({ upstream: '127.0.0.1:0', sessions: 'x', consoleListen: '127.0.0.1:0', consoleTlsKeyFile: 'k.pem', clusterListen: '127.0.0.1:0' } as never))
  for (const part of [/upstream: the port must not be 0/, /sessions: expected/, /key: a security key is required/, /database: clusterListen needs/, /consoleListen: the console needs the instance database/, /consoleTlsCertFile: the console certificate and key/]) assert.match(all, part)
})
