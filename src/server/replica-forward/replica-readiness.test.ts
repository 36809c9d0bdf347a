import assert from 'node:assert/strict'
import { test } from 'node:test'
import { replicaReadiness, type ReplicaReadinessDeps } from './replica-readiness.ts'

async function check(over: Partial<ReplicaReadinessDeps>): Promise<void> {
  await replicaReadiness({
    ownTunnels: () => new Set(),
    heldByPeers: async () => new Map(),
    keyedLinks: () => [],
    uptimeMs: () => 0,
    graceMs: 30_000,
    ...over,
  }).check()
}

test('ready with nothing connected anywhere: the first replica of a cluster is never held back', async () => {
  await check({})
})

test('ready once it holds every tunnel other replicas hold, grace or not', async () => {
  const heldByPeers = async () => new Map([['t1', ['b']], ['t2', ['b', 'c']]])
  await check({ heldByPeers, ownTunnels: () => new Set(['t1', 't2', 't3']) })
  await assert.rejects(check({ heldByPeers, ownTunnels: () => new Set(['t1']), keyedLinks: () => ['b'] }), /1 connected tunnel\(s\) have no agent session on this replica yet \(e\.g\. t2 on b, c\); waiting up to 30 s/)
})

test('a path to a peer counts only after the grace, and only for tunnels that peer holds', async () => {
  const heldByPeers = async () => new Map([['t1', ['b']], ['t2', ['c']]])
  await assert.rejects(check({ heldByPeers, keyedLinks: () => ['b', 'c'], uptimeMs: () => 29_999 }), /waiting up to 30 s/)
  await check({ heldByPeers, keyedLinks: () => ['b', 'c'], uptimeMs: () => 30_000 })
  await assert.rejects(check({ heldByPeers, keyedLinks: () => ['b'], uptimeMs: () => 60_000 }), /1 connected tunnel\(s\) have no agent session on this replica and no authenticated link to a replica that holds one \(e\.g\. t2 on c\)/)
})
