import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { StatusFeed, type AgentNodeStatus } from './status-feed.ts'

checkNoLeakedHandles()

const status = (s: 'CONNECTING' | 'CONNECTED', sessions: number): AgentNodeStatus => ({ status: s, reason: `${s.toLowerCase()} now`, since: new Date(0).toISOString(), sessions, sessionsWanted: 2 })
const NO_KEY: AgentNodeStatus = { status: null, reason: 'waiting for a key', since: new Date(0).toISOString(), sessions: 0, sessionsWanted: 0 }

test('listeners hear every change with the status of that moment, until they unsubscribe', () => {
  let now = status('CONNECTING', 0)
  const feed = new StatusFeed(() => now)
  const heard: Array<number> = []
  const stop = feed.onStatus((s) => heard.push(s.sessions))
  now = status('CONNECTED', 1)
  feed.emit()
  now = status('CONNECTED', 2)
  feed.emit()
  stop()
  feed.emit()
  assert.deepEqual(heard, [1, 2])
})

test('waitFor resolves at once on a status that already matches, else on the first change that does', async () => {
  let now = status('CONNECTING', 0)
  const feed = new StatusFeed(() => now)
  assert.equal((await feed.waitFor((s) => s.status === 'CONNECTING')).status, 'CONNECTING')
  const waiting = feed.waitFor((s) => s.sessions === 2)
  now = status('CONNECTED', 1)
  feed.emit()
  now = status('CONNECTED', 2)
  feed.emit()
  assert.equal((await waiting).sessions, 2)
  let heard = 0
  feed.onStatus(() => heard++)
  feed.emit()
  assert.equal(heard, 1, 'a waiter that resolved listens no more')
})

test('a wait that runs out says what the status was then', async () => {
  const feed = new StatusFeed(() => NO_KEY)
  await assert.rejects(feed.waitFor((s) => s.status === 'CONNECTED', 30), { message: 'agent status did not match within 30 ms (now no key: waiting for a key)' })
})
