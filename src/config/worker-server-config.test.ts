import assert from 'node:assert/strict'
import { availableParallelism } from 'node:os'
import { test } from 'node:test'
import { loadServerConfig } from './server-config.ts'
import { workerServerConfig } from './worker-server-config.ts'
import { MAX_WORKERS } from './workers-option.ts'

test('worker i gets its own agent endpoint, metrics and bus at port + i, the shared ingress, and node id <host>-w<i>', () => {
  const config = loadServerConfig({ workers: 3, listen: '127.0.0.1:9443', ingressListen: '127.0.0.1:9080', metricsListen: '127.0.0.1:9100' })
  assert.deepEqual(config.cluster?.listen, { host: '127.0.0.1', port: 0 }, 'a loopback bus when none is configured')
  const w2 = workerServerConfig(config, 2, 'host-abc123')
  assert.deepEqual(w2.listen, { host: '127.0.0.1', port: 9445 })
  assert.deepEqual(w2.ingressListen, { host: '127.0.0.1', port: 9080 })
  assert.deepEqual(w2.metricsListen, { host: '127.0.0.1', port: 9102 })
  assert.deepEqual(w2.cluster?.listen, { host: '127.0.0.1', port: 0 }, 'port 0 stays 0: each worker binds its own')
  assert.equal(w2.clusterNodeId, 'host-abc123-w2')
  assert.equal(w2.advertiseUrl, 'https://127.0.0.1:9445')
  assert.equal(w2.publicUrl, 'https://127.0.0.1:9443', 'keys name the first worker, as they name a single server')
})

test("an operator's bus, advertise URL and node id are moved by the worker's index too", () => {
  const config = loadServerConfig({
    workers: 2,
    listen: '0.0.0.0:8443',
    clusterListen: '10.0.0.1:7946',
    clusterAdvertise: '10.0.0.1:7946',
    publicUrl: 'https://tunnel.example.com',
    advertiseUrl: 'https://r1.example.com:9443',
    clusterNodeId: 'r1',
  })
  const w1 = workerServerConfig(config, 1, 'ignored')
  assert.deepEqual(w1.cluster?.listen, { host: '10.0.0.1', port: 7947 })
  assert.equal(w1.cluster?.advertise, '10.0.0.1:7947')
  assert.equal(w1.advertiseUrl, 'https://r1.example.com:9444')
  assert.equal(w1.publicUrl, 'https://tunnel.example.com')
  assert.equal(w1.clusterNodeId, 'r1-w1')
  const w0 = workerServerConfig(config, 0, 'ignored')
  assert.equal(w0.advertiseUrl, 'https://r1.example.com:9443')
})

test('one worker: no cluster bus unless configured, as before; auto is one per available core', () => {
  assert.equal(loadServerConfig({}).cluster, undefined)
  assert.equal(loadServerConfig({}).workers, 1)
  assert.equal(loadServerConfig({ workers: 'auto' }).workers, Math.min(availableParallelism(), MAX_WORKERS))
})
