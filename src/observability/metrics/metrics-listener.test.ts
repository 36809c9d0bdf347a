import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, test } from 'node:test'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { silentLogger } from '../logger.ts'
import { MetricsListener, type ReadinessCheck } from './metrics-listener.ts'

checkNoLeakedHandles()

function get(listener: MetricsListener, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: listener.address.host, port: listener.address.port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function start(checks: ReadinessCheck[], render: () => Promise<string> = async () => '# nothing\n'): Promise<MetricsListener> {
  const listener = await MetricsListener.start({ host: '127.0.0.1', port: 0 }, { render, contentType: 'text/plain; version=0.0.4; charset=utf-8', checks, log: silentLogger() }, { checkTimeoutMs: 50 })
  after(() => listener.close())
  return listener
}

test('/readyz fails a check that throws, rejects or never answers, each with its reason, and keeps the passing ones', async () => {
  let release: () => void = () => {}
  const listener = await start([
    { name: 'passes', check: () => {} },
    {
      name: 'throws',
      check: () => {
        throw new Error('listener down')
      },
    },
    { name: 'rejects', check: () => Promise.reject(new Error('database gone')) },
    { name: 'hangs', check: () => new Promise<void>((resolve) => (release = resolve)) },
  ])
  const res = await get(listener, '/readyz')
  release()
  assert.equal(res.status, 503)
  assert.deepEqual(JSON.parse(res.body), {
    status: 'not ready',
    checks: [
      { name: 'passes', ok: true },
      { name: 'throws', ok: false, reason: 'listener down' },
      { name: 'rejects', ok: false, reason: 'database gone' },
      { name: 'hangs', ok: false, reason: 'no answer within 50 ms' },
    ],
  })
})

test('/metrics answers 500 with a code, not a stack, when rendering fails', async () => {
  const listener = await start([], () => Promise.reject(new Error('collector broke')))
  const res = await get(listener, '/metrics')
  assert.equal(res.status, 500)
  assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'TUN_ERR_INTERNAL')
  assert.doesNotMatch(res.body, /collector broke|at /)
})

test('a port in use is refused with an error naming the option', async () => {
  const first = await start([])
  await assert.rejects(
    MetricsListener.start(first.address, { render: async () => '', contentType: 'text/plain', checks: [], log: silentLogger() }),
    (err: { code?: string; message?: string }) => err.code === 'TUN_ERR_CONFIG_INVALID' && /metricsListen: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/.test(err.message ?? ''),
  )
})
