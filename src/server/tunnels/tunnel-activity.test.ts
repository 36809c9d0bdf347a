import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ACTIVITY_EVENTS, ACTIVITY_MINUTES, TunnelActivity } from './tunnel-activity.ts'

const T0 = Date.parse('2026-03-01T10:00:00.000Z')

function clock() {
  let now = T0
  return { now: () => now, advance: (ms: number) => (now += ms) }
}

test('requests, errors and bytes land in their minute; the hour slides', () => {
  const c = clock()
  const activity = new TunnelActivity({ exists: (id) => id === 'tun1', now: c.now })
  const sink = activity.sinks(undefined)
  sink.responseStarted(200, NaN, 'tun1')
  sink.responseStarted(502, NaN, 'tun1')
  sink.tunnelNamed!('tun1', 60)
  sink.bytesReceived(40, 'tun1')
  sink.bytesSent(1000, 'tun1')
  c.advance(60_000)
  sink.responseStarted(200, NaN, 'tun1')
  let view = activity.view('tun1')
  assert.equal(view.minutes.length, ACTIVITY_MINUTES)
  const [before, last] = view.minutes.slice(-2)
  assert.deepEqual([before!.requests, before!.errors, before!.bytesIn, before!.bytesOut], [2, 1, 100, 1000])
  assert.deepEqual([last!.requests, last!.errors], [1, 0])
  assert.equal(last!.at, new Date(T0 + 60_000).toISOString())
  c.advance(ACTIVITY_MINUTES * 60_000)
  view = activity.view('tun1')
  assert.equal(view.minutes.reduce((s, m) => s + m.requests, 0), 0, 'an hour later the counts are gone')
})

test('only real tunnels get a history: ids a caller or an agent makes up are not kept', () => {
  const activity = new TunnelActivity({ exists: (id) => id === 'tun1' })
  const sink = activity.sinks(undefined)
  for (let i = 0; i < 1000; i++) {
    sink.responseStarted(404, NaN, `made-up-${i}`)
    sink.authFailed('TUN_ERR_TUNNEL_NOT_FOUND', `made-up-${i}`, 'tunnel deleted or never existed')
  }
  sink.responseStarted(200, NaN, undefined)
  assert.deepEqual(activity.view('made-up-1').events, [])
  assert.equal(activity.view('made-up-1').minutes.reduce((s, m) => s + m.requests, 0), 0)
})

test('key rejections are events, newest first, the last 50 kept; calls go on to the metrics', () => {
  const seen: unknown[] = []
  const next = {
    now: () => 42,
    responseStarted: (...a: unknown[]) => seen.push(['response', ...a]),
    bytesReceived: (...a: unknown[]) => seen.push(['in', ...a]),
    bytesSent: (...a: unknown[]) => seen.push(['out', ...a]),
    authFailed: (...a: unknown[]) => seen.push(['auth', ...a]),
  }
  const activity = new TunnelActivity({ exists: () => true })
  const sink = activity.sinks(next)
  for (let i = 0; i < ACTIVITY_EVENTS + 5; i++) sink.authFailed('TUN_ERR_KEY_REJECTED', 'tun1', `attempt ${i}`)
  const { events } = activity.view('tun1')
  assert.equal(events.length, ACTIVITY_EVENTS)
  assert.equal(events[0]!.detail, `attempt ${ACTIVITY_EVENTS + 4} (TUN_ERR_KEY_REJECTED)`)
  assert.equal(events[0]!.kind, 'key-rejected')
  sink.responseStarted(200, 1, 'tun1')
  assert.equal(sink.now(), 42)
  assert.deepEqual(seen.at(-1), ['response', 200, 1, 'tun1'])
  activity.forget('tun1')
  assert.deepEqual(activity.view('tun1').events, [])
})
