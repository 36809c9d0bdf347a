import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { InstanceKeyRecord, InstanceNodeRecord } from '../../store/index.ts'
import { HINT_CAUSES, statusHint } from '../../errors/status-hints.ts'
import { instanceStatus, MISSED_HEARTBEATS_DOWN, type InstanceStatusName, type InstanceStatusView } from './instance-status.ts'

const NOW = Date.parse('2025-03-01T12:00:00.000Z')
const HEARTBEAT_MS = 5_000
const TUNNEL = 'tun-1'

const iso = (ms: number): string => new Date(ms).toISOString()

function key(overrides: Partial<InstanceKeyRecord> = {}): InstanceKeyRecord {
  return {
    securityKey: 'secret-key-text',
    tunnelId: TUNNEL,
    serverUrl: 'https://tunnels.example.com',
    addedAt: '2025-02-28T09:30:00.000Z',
    addedBy: 'cli on host a',
    tunnelName: 'billing',
    connectedTo: 'Acme Org',
    applicationLinkUrl: 'https://tunnels.example.com/t/tun-1',
    ...overrides,
  }
}

function node(nodeId: string, overrides: Partial<InstanceNodeRecord> = {}): InstanceNodeRecord {
  return {
    nodeId,
    address: `${nodeId}.local`,
    version: '0.1.0',
    startedAt: iso(NOW - 3_600_000),
    heartbeatAt: iso(NOW - 1_000),
    heartbeatMs: HEARTBEAT_MS,
    stoppedAt: null,
    tunnelId: TUNNEL,
    status: 'CONNECTED',
    reason: 'connected',
    code: null,
    statusSince: iso(NOW - 60_000),
    sessions: 2,
    sessionsWanted: 2,
    ...overrides,
  }
}

const connected = (id: string, sessions = 2): InstanceNodeRecord => node(id, { sessions, sessionsWanted: sessions })
const connecting = (id: string, reason = 'opening sessions'): InstanceNodeRecord => node(id, { status: 'CONNECTING', reason, sessions: 0 })
const unavailable = (id: string, reason: string, code = 'ECONNREFUSED'): InstanceNodeRecord =>
  node(id, { status: 'UNAVAILABLE', reason, code, sessions: 0 })
const errored = (id: string, reason = 'the server rejected the security key', code = 'KEY_REJECTED'): InstanceNodeRecord =>
  node(id, { status: 'ERROR', reason, code, sessions: 0 })
/** last heard `silentMs` ago */
const silent = (r: InstanceNodeRecord, silentMs: number): InstanceNodeRecord => ({ ...r, heartbeatAt: iso(NOW - silentMs) })
const stopped = (r: InstanceNodeRecord, atMs = NOW - 30_000): InstanceNodeRecord => ({ ...r, stoppedAt: iso(atMs), heartbeatAt: iso(atMs) })

const ALL_STATUSES: readonly InstanceStatusName[] = ['CONNECTED', 'CONNECTING', 'LIMITED', 'UNAVAILABLE', 'ERROR']

function nodeOf(view: InstanceStatusView, id: string) {
  const n = view.nodes.find((x) => x.id === id)
  assert.ok(n !== undefined, `node ${id} missing from the view`)
  return n
}

interface Case {
  name: string
  key: InstanceKeyRecord | undefined
  rows: InstanceNodeRecord[]
  status: InstanceStatusName | null
  /** every one must appear in the reason */
  reasonHas: (string | RegExp)[]
  /** none may appear in the reason */
  reasonLacks?: (string | RegExp)[]
  /** expected per node: status, online, and reason fragment */
  nodes?: Record<string, { status: InstanceStatusName | null; online: boolean; reasonHas?: string | RegExp }>
}

const CASES: Case[] = [
  {
    name: 'no key, no nodes',
    key: undefined,
    rows: [],
    status: null,
    reasonHas: ['no security key', 'apptunnel key add'],
  },
  {
    name: 'no key: running nodes wait for a security key',
    key: undefined,
    rows: [node('n1', { tunnelId: null, status: null, reason: 'no key', sessions: 0 }), node('n2', { tunnelId: null, status: null, reason: 'no key', sessions: 0 })],
    status: null,
    reasonHas: ['apptunnel key add'],
    nodes: {
      n1: { status: null, online: true, reasonHas: 'waiting for a security key' },
      n2: { status: null, online: true, reasonHas: 'waiting for a security key' },
    },
  },
  {
    name: 'no key: a node that still reports an old status is shown without status',
    key: undefined,
    rows: [connected('n1')],
    status: null,
    reasonHas: ['apptunnel key add'],
    nodes: { n1: { status: null, online: true, reasonHas: 'waiting for a security key' } },
  },
  {
    name: 'no key: stopped and silent nodes are offline and still without status',
    key: undefined,
    rows: [stopped(node('n1', { tunnelId: null, status: null })), silent(node('n2', { tunnelId: null, status: null }), 10 * HEARTBEAT_MS)],
    status: null,
    reasonHas: ['apptunnel key add'],
    nodes: {
      n1: { status: null, online: false, reasonHas: 'node stopped at' },
      n2: { status: null, online: false, reasonHas: 'not responding' },
    },
  },
  {
    name: 'key but no nodes',
    key: key(),
    rows: [],
    status: 'UNAVAILABLE',
    reasonHas: ['no agent node', 'running'],
  },
  {
    name: 'one node connected',
    key: key(),
    rows: [connected('n1', 1)],
    status: 'CONNECTED',
    reasonHas: ['node n1 is connected (1 session)'],
    nodes: { n1: { status: 'CONNECTED', online: true } },
  },
  {
    name: 'all three nodes connected: sessions are summed',
    key: key(),
    // sessionsWanted differs from sessions: only live sessions are counted
    rows: [connected('n1', 2), node('n2', { sessions: 3, sessionsWanted: 8 }), connected('n3', 4)],
    status: 'CONNECTED',
    reasonHas: ['all 3 nodes are connected (9 sessions)'],
    nodes: {
      n1: { status: 'CONNECTED', online: true },
      n2: { status: 'CONNECTED', online: true },
      n3: { status: 'CONNECTED', online: true },
    },
  },
  {
    name: 'one node stopped while the others are connected',
    key: key(),
    rows: [connected('n1'), stopped(connected('n2'), NOW - 45_000), connected('n3')],
    status: 'LIMITED',
    reasonHas: ['2 of 3 nodes connected', 'n2', `node stopped at ${iso(NOW - 45_000)}`, 'cluster nodes view'],
    reasonLacks: ['n1', 'n3'],
    nodes: {
      n1: { status: 'CONNECTED', online: true },
      n2: { status: 'UNAVAILABLE', online: false, reasonHas: 'node stopped at' },
      n3: { status: 'CONNECTED', online: true },
    },
  },
  {
    name: 'one node silent for more than 3 heartbeats while the other is connected',
    key: key(),
    rows: [connected('n1'), silent(connected('n2'), MISSED_HEARTBEATS_DOWN * HEARTBEAT_MS + 1_000)],
    status: 'LIMITED',
    reasonHas: ['1 of 2 nodes connected', 'n2', 'not responding', `${(MISSED_HEARTBEATS_DOWN * HEARTBEAT_MS + 1_000) / 1000} s`],
    nodes: {
      n1: { status: 'CONNECTED', online: true },
      n2: { status: 'UNAVAILABLE', online: false, reasonHas: 'not responding' },
    },
  },
  {
    name: 'the silence threshold follows each node own heartbeatMs',
    key: key(),
    // 20 s of silence: down for a 5 s heartbeat, fine for a 10 s heartbeat
    rows: [silent(connected('fast'), 20_000), silent(node('slow', { heartbeatMs: 10_000 }), 20_000)],
    status: 'LIMITED',
    reasonHas: ['1 of 2 nodes connected', 'fast', 'not responding'],
    reasonLacks: ['slow'],
    nodes: {
      fast: { status: 'UNAVAILABLE', online: false },
      slow: { status: 'CONNECTED', online: true },
    },
  },
  {
    name: 'a node silent for less than 3 heartbeats still counts as online',
    key: key(),
    rows: [connected('n1'), silent(connected('n2'), MISSED_HEARTBEATS_DOWN * HEARTBEAT_MS - 1_000)],
    status: 'CONNECTED',
    reasonHas: ['both nodes are connected (4 sessions)'],
    nodes: {
      n1: { status: 'CONNECTED', online: true },
      n2: { status: 'CONNECTED', online: true },
    },
  },
  {
    name: 'a node silent for exactly 3 heartbeats still counts as online',
    key: key(),
    rows: [silent(connected('n1'), MISSED_HEARTBEATS_DOWN * HEARTBEAT_MS)],
    status: 'CONNECTED',
    reasonHas: [/^node \S+ is connected/],
    nodes: { n1: { status: 'CONNECTED', online: true } },
  },
  {
    name: 'some connected, one connecting',
    key: key(),
    rows: [connected('n1'), connecting('n2'), connected('n3')],
    status: 'CONNECTING',
    reasonHas: ['2 of 3 nodes connected', 'node n2 is still connecting'],
    nodes: { n2: { status: 'CONNECTING', online: true } },
  },
  {
    name: 'some connected, the rest connecting: every connecting node is named',
    key: key(),
    rows: [connected('n1'), connecting('n2'), connecting('n3')],
    status: 'CONNECTING',
    reasonHas: ['1 of 3 nodes connected', 'nodes n2, n3 are still connecting'],
  },
  {
    name: 'some connected, one connecting and one down → LIMITED naming only the down node',
    key: key(),
    rows: [connected('n1'), connecting('n2'), unavailable('n3', 'cannot reach tunnels.example.com:443')],
    status: 'LIMITED',
    reasonHas: ['1 of 3 nodes connected', 'n3 (cannot reach tunnels.example.com:443)'],
    reasonLacks: ['n2'],
  },
  {
    name: 'none connected, some connecting',
    key: key(),
    rows: [connecting('n1', 'TLS handshake in progress'), unavailable('n2', 'proxy refused')],
    status: 'CONNECTING',
    reasonHas: ['node n1 is still connecting', 'TLS handshake in progress'],
  },
  {
    name: 'none connected, all connecting',
    key: key(),
    rows: [connecting('n1', 'first try'), connecting('n2', 'second try')],
    status: 'CONNECTING',
    reasonHas: ['nodes n1, n2 are still connecting', 'first try'],
  },
  {
    name: 'none connected, all unavailable → the first running node reason',
    key: key(),
    rows: [unavailable('n1', 'upstream port is not configured', 'NO_UPSTREAM'), unavailable('n2', 'proxy refused the CONNECT')],
    status: 'UNAVAILABLE',
    reasonHas: [/^upstream port is not configured$/],
    reasonLacks: ['proxy refused'],
  },
  {
    name: 'none connected, the first node stopped, the second unavailable → the running node reason',
    key: key(),
    rows: [stopped(unavailable('n1', 'old reason')), unavailable('n2', 'TLS certificate does not match the pin')],
    status: 'UNAVAILABLE',
    reasonHas: [/^TLS certificate does not match the pin$/],
  },
  {
    name: 'none connected, no node running → every node named with why',
    key: key(),
    rows: [stopped(connected('n1')), silent(connected('n2'), 60_000)],
    status: 'UNAVAILABLE',
    reasonHas: ['no node is running', 'n1 (node stopped at', 'n2 (node is not responding'],
    nodes: {
      n1: { status: 'UNAVAILABLE', online: false },
      n2: { status: 'UNAVAILABLE', online: false },
    },
  },
  {
    name: 'a node reporting an unknown status is shown UNAVAILABLE with its reason',
    key: key(),
    rows: [node('n1', { status: 'WEIRD', reason: 'something odd', sessions: 0 })],
    status: 'UNAVAILABLE',
    reasonHas: [/^something odd$/],
    nodes: { n1: { status: 'UNAVAILABLE', online: true, reasonHas: 'something odd' } },
  },
  {
    name: 'a single node in ERROR',
    key: key(),
    rows: [errored('n1', 'the tunnel was deleted')],
    status: 'ERROR',
    reasonHas: [/^the tunnel was deleted$/],
    nodes: { n1: { status: 'ERROR', online: true } },
  },
  {
    name: 'ERROR wins even when another node is connected',
    key: key(),
    rows: [connected('n1'), errored('n2', 'the server rejected the security key (401)')],
    status: 'ERROR',
    reasonHas: [/^the server rejected the security key \(401\)$/],
  },
  {
    name: 'ERROR wins over connecting and unavailable nodes',
    key: key(),
    rows: [connecting('n1'), unavailable('n2', 'no route'), errored('n3', 'malformed key')],
    status: 'ERROR',
    reasonHas: [/^malformed key$/],
  },
  {
    name: 'a silent node whose last status was ERROR does not make the instance ERROR',
    key: key(),
    rows: [connected('n1'), silent(errored('n2'), 10 * HEARTBEAT_MS)],
    status: 'LIMITED',
    reasonHas: ['n2', 'not responding'],
    reasonLacks: ['rejected'],
    nodes: { n2: { status: 'UNAVAILABLE', online: false, reasonHas: 'not responding' } },
  },
  {
    name: 'a stopped node whose last status was ERROR does not make the instance ERROR',
    key: key(),
    rows: [connected('n1'), stopped(errored('n2'))],
    status: 'LIMITED',
    reasonHas: ['n2', 'node stopped at'],
    nodes: { n2: { status: 'UNAVAILABLE', online: false } },
  },
  {
    name: 'a node still reporting about another tunnel is picking up the key',
    key: key(),
    rows: [connected('n1'), node('n2', { tunnelId: 'tun-old', status: 'CONNECTED' })],
    status: 'CONNECTING',
    reasonHas: ['1 of 2 nodes connected', 'node n2 is still connecting'],
    nodes: { n2: { status: 'CONNECTING', online: true, reasonHas: 'picking up the security key' } },
  },
  {
    name: 'an ERROR about another tunnel does not make the instance ERROR',
    key: key(),
    rows: [node('n1', { tunnelId: 'tun-old', status: 'ERROR', reason: 'the tunnel was deleted' })],
    status: 'CONNECTING',
    reasonHas: ['node n1 is still connecting', 'picking up the security key'],
    reasonLacks: ['deleted'],
    nodes: { n1: { status: 'CONNECTING', online: true, reasonHas: 'picking up the security key' } },
  },
  {
    name: 'a node with status null while a key exists is picking up the key',
    key: key(),
    rows: [node('n1', { tunnelId: null, status: null, reason: 'no key', sessions: 0 })],
    status: 'CONNECTING',
    reasonHas: ['node n1 is still connecting: picking up the security key'],
    nodes: { n1: { status: 'CONNECTING', online: true, reasonHas: 'picking up the security key' } },
  },
  {
    name: 'a node with the right tunnel but status null is picking up the key',
    key: key(),
    rows: [node('n1', { status: null, reason: '', sessions: 0 })],
    status: 'CONNECTING',
    reasonHas: ['picking up the security key'],
    nodes: { n1: { status: 'CONNECTING', online: true, reasonHas: 'picking up the security key' } },
  },
]

for (const c of CASES) {
  test(`instanceStatus: ${c.name}`, () => {
    const view = instanceStatus(c.key, c.rows, NOW)
    assert.equal(view.status, c.status, `status; reason was: ${view.reason}`)
    for (const part of c.reasonHas) {
      if (typeof part === 'string') assert.ok(view.reason.includes(part), `reason ${JSON.stringify(view.reason)} lacks ${JSON.stringify(part)}`)
      else assert.match(view.reason, part)
    }
    for (const part of c.reasonLacks ?? []) {
      if (typeof part === 'string') assert.ok(!view.reason.includes(part), `reason ${JSON.stringify(view.reason)} should not mention ${JSON.stringify(part)}`)
      else assert.doesNotMatch(view.reason, part)
    }
    assert.ok(view.hint.trim().length > 0, 'hint is empty')
    if (c.status !== null) assert.equal(view.hint, statusHint({ status: c.status, cause: view.cause, serverUrl: c.key?.serverUrl }))
    assert.doesNotMatch(view.hint, /port 443|on 443/, 'the key names the server: no default port')
    // one node view per row, in row order
    assert.deepEqual(
      view.nodes.map((n) => n.id),
      c.rows.map((r) => r.nodeId),
    )
    for (const [id, want] of Object.entries(c.nodes ?? {})) {
      const n = nodeOf(view, id)
      assert.equal(n.status, want.status, `node ${id} status (reason ${n.reason})`)
      assert.equal(n.online, want.online, `node ${id} online`)
      if (want.reasonHas !== undefined) {
        if (typeof want.reasonHas === 'string') assert.ok(n.reason.includes(want.reasonHas), `node ${id} reason ${JSON.stringify(n.reason)}`)
        else assert.match(n.reason, want.reasonHas)
      }
    }
    for (const n of view.nodes) assert.ok(n.reason.length > 0, `node ${n.id} has an empty reason`)
  })
}

test('no key: tunnel is null and the hint says to add a key', () => {
  const view = instanceStatus(undefined, [connected('n1')], NOW)
  assert.equal(view.tunnel, null)
  assert.equal(view.status, null)
  assert.match(view.reason, /run apptunnel key add/)
  assert.match(view.hint, /security key/)
  assert.equal(view.nodes[0]?.status, null)
})

test('the tunnel part of the view comes from the key', () => {
  const k = key()
  const view = instanceStatus(k, [connected('n1')], NOW)
  assert.deepEqual(view.tunnel, {
    id: 'tun-1',
    name: 'billing',
    connectedTo: 'Acme Org',
    applicationLinkUrl: 'https://tunnels.example.com/t/tun-1',
    serverUrl: 'https://tunnels.example.com',
    addedAt: '2025-02-28T09:30:00.000Z',
  })
  // the secret never shows up anywhere in the view
  assert.ok(!JSON.stringify(view).includes(k.securityKey))
})

test('the tunnel part keeps nulls before any node has connected', () => {
  const view = instanceStatus(key({ tunnelName: null, connectedTo: null, applicationLinkUrl: null }), [], NOW)
  assert.deepEqual(view.tunnel, {
    id: 'tun-1',
    name: null,
    connectedTo: null,
    applicationLinkUrl: null,
    serverUrl: 'https://tunnels.example.com',
    addedAt: '2025-02-28T09:30:00.000Z',
  })
})

test('the LIMITED hint points to the cluster nodes page and apptunnel key status', () => {
  const view = instanceStatus(key(), [connected('n1'), stopped(connected('n2'))], NOW)
  assert.equal(view.status, 'LIMITED')
  assert.match(view.hint, /Cluster nodes page/)
  assert.match(view.hint, /apptunnel key status/)
})

test('hints follow the cause, with the server of the key (issue 19)', () => {
  const k = key({ serverUrl: 'https://tunnels.example.com:8443' })
  const deleted = instanceStatus(k, [errored('n1', 'tunnel deleted', 'TUN_ERR_TUNNEL_NOT_FOUND')], NOW)
  assert.equal(deleted.status, 'ERROR')
  assert.match(deleted.hint, /deleted in the cloud console/)
  assert.doesNotMatch(deleted.hint, /add the security key again/i)
  const rejected = instanceStatus(k, [errored('n1', 'the server rejected the security key', 'TUN_ERR_KEY_REJECTED')], NOW)
  assert.notEqual(rejected.hint, deleted.hint, 'two ERROR causes, two hints')
  const unreachable = instanceStatus(k, [unavailable('n1', 'cannot reach tunnels.example.com:8443', 'TUN_ERR_SERVER_UNREACHABLE')], NOW)
  assert.match(unreachable.hint, /tunnels\.example\.com on port 8443/)
  const noneRunning = instanceStatus(k, [stopped(connected('n1'))], NOW)
  assert.equal(noneRunning.status, 'UNAVAILABLE')
  assert.match(noneRunning.hint, /No agent node of this instance is running/)
  assert.doesNotMatch(noneRunning.hint, /network|outgoing/, 'not the network when no node runs')
  const defaultPort = instanceStatus(key({ serverUrl: 'https://tunnels.example.com' }), [unavailable('n1', 'x', 'TUN_ERR_SERVER_UNREACHABLE')], NOW)
  assert.match(defaultPort.hint, /tunnels\.example\.com on port 443/)
})

test('every cause of the table has a distinct, non-empty hint', () => {
  const hints = HINT_CAUSES.map((cause) => statusHint({ status: 'ERROR', cause, serverUrl: 'https://s.example:9000' }))
  for (const [i, hint] of hints.entries()) assert.ok(hint.trim().length > 20, `hint for ${HINT_CAUSES[i]} is empty`)
  assert.equal(new Set(hints).size, hints.length, 'hints are distinct')
  for (const s of ALL_STATUSES) assert.ok(statusHint({ status: s, cause: null, serverUrl: 'https://s.example:9000' }).length > 20, s)
})

test('a node view copies the row fields', () => {
  const row = node('n1', {
    address: '10.0.0.7',
    version: '1.2.3',
    startedAt: '2025-03-01T10:00:00.000Z',
    heartbeatAt: iso(NOW - 2_000),
    sessions: 3,
    sessionsWanted: 4,
    status: 'UNAVAILABLE',
    reason: 'one session failed: proxy refused',
    code: 'PROXY_REFUSED',
  })
  const [n] = instanceStatus(key(), [row], NOW).nodes
  assert.deepEqual(n, {
    id: 'n1',
    address: '10.0.0.7',
    status: 'UNAVAILABLE',
    reason: 'one session failed: proxy refused',
    code: 'PROXY_REFUSED',
    online: true,
    sessions: 3,
    sessionsWanted: 4,
    lastHeartbeat: iso(NOW - 2_000),
    startedAt: '2025-03-01T10:00:00.000Z',
    version: '1.2.3',
  })
})

test('an offline node shows no sessions and no code', () => {
  const rows = [stopped(errored('n1')), silent({ ...connected('n2', 5), code: 'X' }, 60_000)]
  const view = instanceStatus(key(), rows, NOW)
  for (const n of view.nodes) {
    assert.equal(n.online, false, n.id)
    assert.equal(n.sessions, 0, n.id)
    assert.equal(n.code, null, n.id)
  }
  // sessionsWanted is what the node was configured for, still shown
  assert.equal(nodeOf(view, 'n2').sessionsWanted, 5)
})

test('the silence in the not-responding reason is in whole seconds', () => {
  const view = instanceStatus(key(), [silent(connected('n1'), 61_400)], NOW)
  assert.match(nodeOf(view, 'n1').reason, /no heartbeat for 61 s/)
})

test('the result depends on nowMs: the same rows go from CONNECTED to LIMITED as time passes', () => {
  const rows = [node('n1', { heartbeatAt: iso(NOW) }), node('n2', { heartbeatAt: iso(NOW) })]
  assert.equal(instanceStatus(key(), rows, NOW).status, 'CONNECTED')
  const later = NOW + MISSED_HEARTBEATS_DOWN * HEARTBEAT_MS + 1
  // n1 kept beating, n2 went quiet
  const view = instanceStatus(key(), [{ ...rows[0]!, heartbeatAt: iso(later) }, rows[1]!], later)
  assert.equal(view.status, 'LIMITED')
  assert.match(view.reason, /n2 \(node is not responding/)
})

test('instanceStatus does not mutate its inputs', () => {
  const k = key()
  const rows = [connected('n1'), stopped(errored('n2')), connecting('n3')]
  const before = JSON.stringify({ k, rows })
  instanceStatus(k, rows, NOW)
  assert.equal(JSON.stringify({ k, rows }), before)
})
