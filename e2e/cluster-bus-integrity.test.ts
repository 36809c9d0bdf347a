import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { after, describe, test } from 'node:test'
import { FRAME_EVENT } from '../src/cluster/bus/bus-messages.ts'
import { startClusterNode, type ClusterNode, type ClusterNodeOptions } from '../src/cluster/index.ts'
import { createLogger } from '../src/observability/index.ts'
import type { Database } from '../src/store/index.ts'
import { eventually } from '../src/testing/eventually.ts'
import { startFrameTap, type FrameTap, type TappedConnection } from '../src/testing/frame-tap.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'

checkNoLeakedHandles()

const target = (await databaseTargets()).find((t) => t.name === 'sqlite')!

function options(nodeId: string, advertise?: string): ClusterNodeOptions {
  return {
    nodeId,
    kind: 'server',
    listen: { host: '127.0.0.1', port: 0 },
    advertise,
    authDisabled: false,
    authTimeoutMs: 2000,
    authWarnIntervalMs: 60_000,
    keyPollMs: 60_000,
    keyGraceMs: 60_000,
    statsIntervalMs: 3_600_000,
    heartbeatIntervalMs: 100,
    pingIntervalMs: 1000,
  }
}

function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }) })
  return { log, lines }
}

/** The Prometheus counter of refused bus frames, as /metrics exports it. */
function refused(node: ClusterNode, side: 'server' | 'client'): number {
  const m = new RegExp(`^apptunnel_cluster_bus_frames_refused_total\\{side="${side}",node="${node.nodeId}"\\} (\\d+)$`, 'm').exec(node.renderMetrics())
  return m === null ? Number.NaN : Number(m[1])
}

/** The JSON of an EVENT frame's payload (whatever trails it left as it is), and a way to put it back. */
function eventJson(wire: Buffer): { json: Record<string, unknown>; rebuild: (json: Record<string, unknown>) => Buffer } {
  const payload = wire.subarray(5)
  // An attacker need not know what trails the JSON: it tries where the JSON could end.
  for (let end = payload.length; end > 0; end--) {
    if (payload[end - 1] !== 0x7d) continue
    try {
      const json = JSON.parse(payload.subarray(0, end).toString('utf8')) as Record<string, unknown>
      const trailer = payload.subarray(end)
      return {
        json,
        rebuild: (j) => {
          const body = Buffer.concat([Buffer.from(JSON.stringify(j), 'utf8'), trailer])
          const head = Buffer.alloc(5)
          head[0] = FRAME_EVENT
          head.writeUInt32BE(body.length, 1)
          return Buffer.concat([head, body])
        },
      }
    } catch {
      // not the end of the JSON yet
    }
  }
  throw new Error('no JSON in the EVENT frame')
}

describe('cluster bus integrity: a man in the middle after the handshake', { skip: target.skip }, () => {
  const handles: Database[] = []
  const nodes: ClusterNode[] = []
  let tap: FrameTap | undefined
  after(async () => {
    for (const n of nodes) await n.close()
    await tap?.close()
    for (const h of handles) await h.close()
    await target.dispose()
  })

  test('an altered, a forged, a replayed, a reflected and a cross-link frame are each refused, counted and logged; no forged event reaches a handler', async () => {
    tap = await startFrameTap()
    // node-1 dials node-2 (the smaller id dials) at the address node-2 advertises: the tap's.
    const logs = [capturingLogger(), capturingLogger()]
    const db1 = await target.open()
    handles.push(db1)
    const db2 = await target.open()
    handles.push(db2)
    const node2 = await startClusterNode(options('node-2', tap.address), { database: db2, log: logs[1]!.log })
    nodes.push(node2)
    tap.setTarget(node2.listenAddress.port)
    const node1 = await startClusterNode(options('node-1'), { database: db1, log: logs[0]!.log })
    nodes.push(node1)

    const warns = (i: number): Array<Record<string, unknown>> => logs[i]!.lines.filter((l) => l['level'] === 40 && l['code'] === 'TUN_ERR_CLUSTER_BUS_INTEGRITY')
    const atNode2: string[] = []
    const atNode1: string[] = []
    node2.subscribe('tunnel.changed', (e) => atNode2.push(`${e.tunnelId}:${e.change}`))
    node1.subscribe('tunnel.changed', (e) => atNode1.push(`${e.tunnelId}:${e.change}`))

    let linkNo = 0
    /** the next fresh link through the tap, up on both nodes */
    const freshLink = async (): Promise<TappedConnection> => {
      await eventually(
        () => tap!.connections.length > linkNo && tap!.connections.at(-1)!.busUp && node1.status().links.length === 1 && node2.status().links.length === 1,
        `link ${linkNo + 1} up through the tap`,
      )
      linkNo = tap!.connections.length
      return tap!.connections.at(-1)!
    }
    const linkDropped = (c: TappedConnection, what: string): Promise<void> => eventually(() => c.closed, `the link is closed after the ${what}`)

    // 1. One byte of an event changed on the way: "t-alter" would arrive as "t-blter".
    let c = await freshLink()
    c.alterNext('to-server', FRAME_EVENT, (wire) => {
      const at = wire.indexOf('t-alter')
      assert.ok(at > 0)
      wire[at + 2] = 'b'.charCodeAt(0)
      return wire
    })
    node1.publish('tunnel.changed', { tunnelId: 't-alter', change: 'created' })
    await linkDropped(c, 'altered frame')
    await eventually(() => refused(node2, 'server') === 1, 'node-2 counted the altered frame')
    // The genuine event stays in node-1's outbox and arrives over the next link, once.
    c = await freshLink()
    await eventually(() => atNode2.includes('t-alter:created'), 'the genuine event arrives over the next link')

    // 2. A forged tunnel.changed "deleted", built from a genuine frame of this link.
    node1.publish('tunnel.changed', { tunnelId: 't-forge', change: 'created' })
    await eventually(() => atNode2.includes('t-forge:created'), 'the genuine event arrives')
    const genuine = c.frames['to-server'].filter((f) => f.type === FRAME_EVENT).at(-1)!
    const { json, rebuild } = eventJson(genuine.wire)
    c.inject('to-server', rebuild({ ...json, s: Number(json['s']) + 1000, d: { tunnelId: 'victim', change: 'deleted' } }))
    await linkDropped(c, 'forged frame')
    await eventually(() => refused(node2, 'server') === 2, 'node-2 counted the forged frame')

    // 3. A genuine frame of this link sent again (replay).
    c = await freshLink()
    node1.publish('tunnel.changed', { tunnelId: 't-replay', change: 'deleted' })
    await eventually(() => atNode2.includes('t-replay:deleted'), 'the genuine event arrives')
    const recorded = c.frames['to-server'].filter((f) => f.type === FRAME_EVENT).at(-1)!
    c.inject('to-server', recorded.wire)
    await linkDropped(c, 'replayed frame')
    await eventually(() => refused(node2, 'server') === 3, 'node-2 counted the replayed frame')

    // 4. A frame of node-1's reflected back to node-1, as if node-2 had sent it. The tap picks the
    // one whose place in node-1's stream matches the next place in node-2's, so that only the
    // direction keys can tell it apart.
    c = await freshLink()
    // Acknowledgements are cumulative and batched, so node-1 soon has sent more frames than it got;
    // bounded to ten rounds.
    const reflectIds: string[] = []
    for (let round = 0; round < 10 && c.frames['to-client'].length >= c.frames['to-server'].length; round++) {
      for (let k = 0; k < 5; k++) {
        const id = `t-reflect-${reflectIds.length + 1}`
        reflectIds.push(id)
        node1.publish('tunnel.changed', { tunnelId: id, change: 'created' })
      }
      await eventually(() => atNode2.includes(`${reflectIds.at(-1)}:created`), 'the genuine events arrive')
    }
    const place = c.frames['to-client'].length
    assert.ok(place < c.frames['to-server'].length, `node-1 sent more frames (${c.frames['to-server'].length}) than it received (${place})`)
    c.inject('to-client', c.frames['to-server'][place]!.wire)
    await linkDropped(c, 'reflected frame')
    await eventually(() => refused(node1, 'client') === 1, 'node-1 counted the reflected frame')
    // Refused as it came, not later because it put the stream out of step.
    assert.match(String(warns(0).at(-1)?.['reason']), new RegExp(`^bus frame ${place} \\(`))

    // 5. A frame from an earlier link replayed into this one, at the place it had there.
    const earlier = c
    c = await freshLink()
    node1.publish('tunnel.changed', { tunnelId: 't-cross', change: 'created' })
    await eventually(() => atNode2.includes('t-cross:created'), 'the genuine event arrives')
    const at = c.frames['to-server'].length
    assert.ok(at < earlier.frames['to-server'].length)
    c.inject('to-server', earlier.frames['to-server'][at]!.wire)
    await linkDropped(c, 'frame replayed from another link')
    await eventually(() => refused(node2, 'server') === 4, 'node-2 counted the frame from another link')
    assert.match(String(warns(1).at(-1)?.['reason']), new RegExp(`^bus frame ${at} \\(`))
    await freshLink()

    assert.deepEqual(
      atNode2,
      ['t-alter:created', 't-forge:created', 't-replay:deleted', ...reflectIds.map((id) => `${id}:created`), 't-cross:created'],
      'node-2 saw each genuine event once, and nothing forged',
    )
    assert.deepEqual(atNode1, [], 'node-1 never took its own event back as one of node-2\'s')
    assert.equal(refused(node2, 'client'), 0)
    assert.equal(refused(node1, 'server'), 0)
    assert.deepEqual(node2.status().busFramesRefused, { server: 4, client: 0 })
    assert.equal(warns(1).length, 4, 'node-2 warned once per refused frame')
    assert.equal(warns(0).length, 1, 'node-1 warned once, for the reflected frame')
    assert.match(String(warns(1)[0]!['reason']), /MAC does not verify/)
  })
})
