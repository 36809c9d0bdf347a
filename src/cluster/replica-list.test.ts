import assert from 'node:assert/strict'
import { test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import type { ReplicaEndpoint } from '../protocol/index.ts'
import type { ClusterNodeRecord } from '../store/index.ts'
import { ReplicaList } from './replica-list.ts'

const member = (id: string, url: string | null, pin?: string): ClusterNodeRecord => ({
  id,
  kind: 'server',
  address: `${id}:7000`,
  startedAt: new Date(0).toISOString(),
  heartbeatAt: new Date(0).toISOString(),
  status: null,
  agentEndpoint: url === null ? null : { url, ...(pin === undefined ? {} : { pin }) },
})

test('agents are told of this node and of the members that proved the cluster key on a bus link, each with an agent endpoint', () => {
  const list = new ReplicaList('r1', { log: silentLogger() })
  const heard: ReplicaEndpoint[][] = []
  list.onChange((r) => heard.push(r))
  list.membersChanged([member('r1', 'https://r1.test'), member('r2', 'https://r2.test', 'pin2'), member('r3', null)])
  assert.deepEqual(list.current, [{ id: 'r1', url: 'https://r1.test' }], 'a row in the database alone sends no agent to r2')
  list.linkUp('r2')
  list.linkUp('r3')
  assert.deepEqual(list.current.map((r) => r.id), ['r1', 'r2'], 'r3 has no agent endpoint')
  assert.equal(list.current[1]?.pin, 'pin2')
  assert.equal(heard.length, 2, 'the link of r3 changed nothing, so nobody heard of it')
})

test('a member that leaves is dropped and must prove the key again when it comes back; the same list is not announced twice', () => {
  const list = new ReplicaList('r1', { log: silentLogger() })
  const heard: string[] = []
  const stop = list.onChange((r) => heard.push(r.map((x) => x.id).join(',')))
  const both = [member('r1', 'https://r1.test'), member('r2', 'https://r2.test')]
  list.membersChanged(both)
  list.linkUp('r2')
  list.membersChanged(both)
  list.membersChanged([both[0]!])
  list.membersChanged(both)
  assert.deepEqual(heard, ['r1', 'r1,r2', 'r1'], 'r2 back in the rows but not yet linked again')
  list.linkUp('r2')
  stop()
  list.membersChanged([both[0]!])
  assert.deepEqual(heard, ['r1', 'r1,r2', 'r1', 'r1,r2'])
})

test('a list longer than one control message carries is cut, this node first', () => {
  const list = new ReplicaList('r0', { log: silentLogger() })
  const many = Array.from({ length: 200 }, (_, i) => member(`r${i}`, `https://replica-${i}.example.test:8443`, 'x'.repeat(43)))
  list.membersChanged(many)
  for (const m of many) list.linkUp(m.id)
  assert.ok(list.current.length < many.length)
  assert.equal(list.current[0]?.id, 'r0')
})
