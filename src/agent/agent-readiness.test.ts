import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { openDatabase } from '../store/index.ts'
import { agentReadinessChecks } from './agent-readiness.ts'
import { failingChecks } from '../testing/readiness.ts'
import type { AgentNodeStatus } from './status-feed.ts'


const since = new Date(0).toISOString()

test('an agent is ready once one session is connected; until then /readyz says what the node is doing', async () => {
  let status: AgentNodeStatus = { status: 'CONNECTING', reason: 'dialling https://tunnel.example.test', since, sessions: 0, sessionsWanted: 2 }
  const checks = agentReadinessChecks({ status: () => status })
  assert.deepEqual(checks.map((c) => c.name), ['sessions'], 'no database check without a database')
  assert.deepEqual(await failingChecks(checks), ['sessions: no session connected to the tunnel server (CONNECTING: dialling https://tunnel.example.test)'])
  status = { status: null, reason: 'waiting for a key', since, sessions: 0, sessionsWanted: 0 }
  assert.deepEqual(await failingChecks(checks), ['sessions: no session connected to the tunnel server (no key: waiting for a key)'])
  status = { status: 'CONNECTED', reason: 'connected (1 of 2 sessions)', since, sessions: 1, sessionsWanted: 2 }
  assert.deepEqual(await failingChecks(checks), [])
})

test("a node of an on-prem instance also needs its database to answer", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-agent-ready-'))
  const database = await openDatabase(join(dir, 'instance.db'))
  const checks = agentReadinessChecks({ status: () => ({ status: 'CONNECTED', reason: 'connected', since, sessions: 2, sessionsWanted: 2 }), database })
  try {
    assert.deepEqual(checks.map((c) => c.name), ['sessions', 'database'])
    assert.deepEqual(await failingChecks(checks), [])
  } finally {
    await database.close()
  }
  const [down] = await failingChecks(checks)
  assert.match(down ?? '', /^database: /)
  await rm(dir, { recursive: true, force: true })
})
