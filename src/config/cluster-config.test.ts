import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadAgentConfig } from './agent-config.ts'
import { loadServerConfig } from './server-config.ts'
import { configError } from '../testing/config-error.ts'

test('cluster options: off by default; defaults from the reference when on', () => {
  assert.equal(loadServerConfig({}).cluster, undefined)
  const c = loadServerConfig({ clusterListen: '127.0.0.1:7946' }).cluster!
  assert.deepEqual(c, {
    listen: { host: '127.0.0.1', port: 7946 },
    advertise: undefined,
    authDisabled: false,
    authTimeoutMs: 10_000,
    authWarnIntervalMs: 60_000,
    keyPollMs: 60_000,
    keyGraceMs: 150_000,
    statsIntervalMs: 300_000,
    heartbeatIntervalMs: 5_000,
  })
  assert.equal(loadServerConfig({ clusterListen: '0.0.0.0:7946', clusterAdvertise: '[fd00::1]:7946' }).cluster!.advertise, '[fd00::1]:7946')
})

test('cluster options: every problem named with its field', () => {
  assert.match(configError(() => loadServerConfig({ clusterListen: '0.0.0.0:7946' })), /clusterAdvertise: required when clusterListen binds the wildcard/)
  assert.match(configError(() => loadServerConfig({ clusterListen: '127.0.0.1:1', clusterKeyPollMs: 60_000, clusterKeyGraceMs: 30_000 })), /clusterKeyGraceMs: 30000 ms is shorter than clusterKeyPollMs/)
  assert.match(configError(() => loadServerConfig({ clusterAdvertise: '10.0.0.1:7946' })), /clusterAdvertise: needs clusterListen/)
  assert.match(configError(() => loadServerConfig({ clusterListen: 'nonsense' })), /clusterListen: "nonsense" is not HOST:PORT/)
  assert.match(configError(() => loadServerConfig({ clusterListen: '127.0.0.1:1', clusterAdvertise: '10.0.0.1:0' })), /clusterAdvertise: "10.0.0.1:0" must name a reachable host/)
  assert.match(configError(() => loadServerConfig({ clusterListen: '127.0.0.1:1', clusterAuthTimeoutMs: 0 })), /clusterAuthTimeoutMs/)
  assert.match(configError(() => loadServerConfig({ clusterListen: '127.0.0.1:1', clusterNodeId: 'bad id' })), /clusterNodeId/)
  assert.match(configError(() => loadAgentConfig({ key: 'k', upstream: '127.0.0.1:1', clusterListen: '127.0.0.1:2' })), /database: clusterListen needs the instance database/)
})
