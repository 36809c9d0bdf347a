import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { CLUSTER_KEY_PROPERTY, startClusterNode, type ClusterNode, type ClusterNodeOptions } from '../src/cluster/index.ts'
import { silentLogger } from '../src/observability/index.ts'
import { SecurityPropertyRepository, type Database } from '../src/store/index.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { eventually } from '../src/testing/eventually.ts'
import { testClusterNodeOptions } from '../src/testing/cluster-options.ts'

checkNoLeakedHandles()

const targets = await databaseTargets()

// Minute-scale timings shrunk to fit a test: the key row is polled every 300 ms, the old key is
// accepted for 600 ms after a rotation, heartbeats every 100 ms.
const options = (nodeId: string): ClusterNodeOptions => testClusterNodeOptions(nodeId, { kind: 'agent', keyPollMs: 300, keyGraceMs: 600 })

for (const target of targets) {
  describe(`three-node cluster bus on ${target.name}`, { skip: target.skip }, () => {
    const handles: Database[] = []
    const nodes: ClusterNode[] = []
    after(async () => {
      for (const n of nodes) await n.close()
      for (const h of handles) await h.close()
      await target.dispose()
    })

    test('events flow through a key rotation: none lost, none twice, none over an unauthenticated or retired link', async () => {
      // Each node has its own connection pool, as separate processes would.
      for (const id of ['node-1', 'node-2', 'node-3']) {
        const db = await target.open()
        handles.push(db)
        nodes.push(await startClusterNode(options(id), { database: db, log: silentLogger() }))
      }
      const meshed = (): boolean => nodes.every((n) => n.status().links.length === 2)
      await eventually(meshed, 'full mesh')
      const oldKid = nodes[0]!.keys.current()!.kidHex
      assert.ok(nodes.every((n) => n.keys.current()?.kidHex === oldKid))

      const received = new Map<string, Map<string, number[]>>()
      const violations: string[] = []
      // When each node stops accepting the old key, and when it last delivered an event that came
      // over a link authenticated with it.
      const oldKeyUntil = new Map<string, number>()
      const lastOldKeyDelivery = new Map<string, number>()
      for (const n of nodes) {
        const byOrigin = new Map<string, number[]>()
        received.set(n.nodeId, byOrigin)
        n.keys.on('change', () => {
          const until = n.keys.state().previousAcceptedUntil
          if (n.keys.state().previousKid === oldKid && until !== null) oldKeyUntil.set(n.nodeId, until)
        })
        n.subscribe('node.status', (e, meta) => {
          if (meta.kid === null) violations.push(`${n.nodeId} got ${e.reason} from ${meta.from} over an unauthenticated link`)
          else if (meta.kid === oldKid) lastOldKeyDelivery.set(n.nodeId, Date.now())
          else if (meta.kid !== n.keys.current()?.kidHex) violations.push(`${n.nodeId} got ${e.reason} from ${meta.from} over unknown kid ${meta.kid}`)
          if (e.nodeId !== meta.from) violations.push(`${n.nodeId} got an event of ${e.nodeId} from ${meta.from}`)
          const list = byOrigin.get(meta.from) ?? []
          list.push(Number(e.reason))
          byOrigin.set(meta.from, list)
        })
      }
      const successesBefore = nodes.map((n) => n.stats.client.total().authsSuccess + n.stats.server.total().authsSuccess)

      // Every node publishes every 5 ms, at least 400 times and for at least two seconds (a loaded
      // machine runs fewer timer turns a second: the count is what the checks below rely on); after
      // 100 turns and half a second, an operator deletes the key row.
      const published = new Map<string, number>(nodes.map((n) => [n.nodeId, 0]))
      const started = Date.now()
      let turns = 0
      let rotated = false
      await new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          try {
            turns++
            for (const n of nodes) {
              const seq = published.get(n.nodeId)! + 1
              published.set(n.nodeId, seq)
              n.publish('node.status', { nodeId: n.nodeId, status: 'CONNECTED', reason: String(seq) })
            }
            if (!rotated && turns >= 100 && Date.now() - started > 500) {
              rotated = true
              new SecurityPropertyRepository(handles[0]!).delete(CLUSTER_KEY_PROPERTY).catch(reject)
            }
            if (turns >= 400 && Date.now() - started > 2000) {
              clearInterval(timer)
              resolve()
            }
          } catch (err) {
            clearInterval(timer)
            reject(err as Error)
          }
        }, 5)
      })

      const complete = (): boolean =>
        nodes.every((receiver) => nodes.every((origin) => origin === receiver || (received.get(receiver.nodeId)!.get(origin.nodeId)?.length ?? 0) >= published.get(origin.nodeId)!))
      await eventually(complete, 'every event delivered to both other nodes').catch((err: unknown) => {
        const counts = nodes.map((r) => `${r.nodeId} got ${nodes.filter((o) => o !== r).map((o) => `${received.get(r.nodeId)!.get(o.nodeId)?.length ?? 0}/${published.get(o.nodeId)} of ${o.nodeId}`).join(', ')}; links ${JSON.stringify(r.status().links)}`)
        throw new Error(`${String(err)}\n${counts.join('\n')}`)
      })

      const newKid = nodes[0]!.keys.current()!.kidHex
      assert.notEqual(newKid, oldKid, 'the key rotated')
      await eventually(() => meshed() && nodes.every((n) => n.keys.current()?.kidHex === newKid && n.status().links.every((l) => l.kid === newKid)), 'every link on the new key')

      for (const receiver of nodes) {
        for (const origin of nodes) {
          if (origin === receiver) continue
          const got = received.get(receiver.nodeId)!.get(origin.nodeId)!
          const n = published.get(origin.nodeId)!
          assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), `${receiver.nodeId} got ${origin.nodeId}'s ${n} events exactly once, in order`)
        }
      }
      assert.deepEqual(violations, [])
      for (const n of nodes) {
        const until = oldKeyUntil.get(n.nodeId)
        assert.ok(until !== undefined, `${n.nodeId} kept the old key for a grace period`)
        const last = lastOldKeyDelivery.get(n.nodeId) ?? 0
        // Date.now() has 1 ms steps, and the check that admitted the event ran a moment before this one.
        assert.ok(last <= until + 5, `${n.nodeId} delivered an old-key event ${last - until} ms after the grace ended`)
      }
      nodes.forEach((n, i) => {
        const server = n.stats.server.total()
        const client = n.stats.client.total()
        assert.equal(server.authsSkippedNoSecret + client.authsSkippedNoSecret, 0, `${n.nodeId}: no handshake skipped authentication`)
        assert.ok(server.authsSuccess + client.authsSuccess > successesBefore[i]!, `${n.nodeId}: links re-authenticated after the rotation`)
      })
      const publishedTotal = [...published.values()].reduce((a, b) => a + b, 0)
      assert.ok(publishedTotal >= 1200, `a real load went through (${publishedTotal} events)`)
    })
  })
}
