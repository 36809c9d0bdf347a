import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { openDatabase } from '../store/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { generateSelfSigned } from '../transport/self-signed-certificate.ts'
import { SessionRegistry } from './agent-gateway/session-registry.ts'
import { HttpsFront } from './https-front.ts'
import { HostRouter } from './ingress/host-router.ts'
import { IngressServer } from './ingress/ingress-server.ts'
import { OncePerInterval } from './ingress/once-per-interval.ts'
import { serverReadinessChecks } from './server-readiness.ts'
import { failingChecks } from '../testing/readiness.ts'

checkNoLeakedHandles()


test('/readyz of a lone server: the database answers and both listeners listen; each failure is named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-readiness-'))
  const database = await openDatabase(join(dir, 'server.db'))
  const log = silentLogger()
  const https = new HttpsFront({ ...(await generateSelfSigned(['localhost'])), handshakeTimeoutMs: 1000, headTimeoutMs: 1000, requestTimeoutMs: 1000 }, { routes: [], upgrade: { matches: () => false, handleUpgrade: () => {} }, log })
  const ingress = new IngressServer({
    registry: new SessionRegistry(),
    router: new HostRouter('example.test'),
    describeTunnel: async () => undefined,
    log,
    limits: {},
    timeouts: { headTimeoutMs: 1000, idleTimeoutMs: 1000, upgradedIdleTimeoutMs: 1000, upstreamResponseTimeoutMs: 1000, bodyTimeoutMs: 1000, bodyMinBytesPerSecond: 1 },
    maxStreamsPerSession: 10,
    proto: 'http',
    unsolicitedWarnings: new OncePerInterval(60_000),
  })
  const checks = serverReadinessChecks({ database, https, ingress })
  try {
    assert.deepEqual(checks.map((c) => c.name), ['database', 'https', 'ingress'], 'no replica check without a cluster')
    assert.deepEqual(await failingChecks(checks), ['https: the https listener is not listening', 'ingress: the ingress listener is not listening'])
    await https.listen('127.0.0.1', 0)
    await ingress.listen('127.0.0.1', 0)
    assert.deepEqual(await failingChecks(checks), [])
    await ingress.close(0)
    assert.deepEqual(await failingChecks(checks), ['ingress: the ingress listener is not listening'])
  } finally {
    await https.close()
    await ingress.close(0)
    await database.close()
  }
  const [down] = await failingChecks(checks)
  assert.match(down ?? '', /^database: /, 'a closed database fails its check')
  await rm(dir, { recursive: true, force: true })
})

test('a replica adds the check that it can serve the callers of every tunnel connected somewhere', async () => {
  const checks = serverReadinessChecks({
    database: { ping: async () => {} },
    https: { listening: true },
    ingress: { listening: true },
    replica: { ownTunnels: () => new Set(), heldByPeers: async () => new Map([['t1', ['replica-2']]]), keyedLinks: () => [], uptimeMs: () => 0, graceMs: 30_000 },
  })
  assert.deepEqual(checks.map((c) => c.name).slice(0, 3), ['database', 'https', 'ingress'])
  assert.equal(checks.length, 4)
  const [replica] = await failingChecks(checks)
  assert.match(replica ?? '', /t1/, 'a tunnel held only by a peer, within the grace: not ready, naming it')
})
