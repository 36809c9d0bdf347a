import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { createLogger, logOptionsFromEnv } from './logger.ts'
import { colorAllowed } from './pretty-lines.ts'

test('secrets are redacted at the top level, one and two levels down, and in the credential header', () => {
  let out = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString('utf8')
      done()
    },
  })
  const log = createLogger({ level: 'info', destination: sink })
  log.info({ key: 'S1-top-key', secret: 'S2-top-secret', authorization: 'Bearer S3' }, 'top')
  log.info({ agent: { token: 'S4-one-down' }, a: { b: { password: 'S5-two-down', securityKey: 'S6-atk1' } } }, 'nested')
  log.info({ headers: { 'x-apptunnel-credential': 'S7-credential', cookie: 'S8-cookie' } }, 'headers')
  log.info({ product: { credentialValue: 'S9-atp1' } }, 'created')
  for (const s of ['S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7', 'S8', 'S9']) assert.ok(!out.includes(s), `${s} leaked: ${out}`)
  assert.equal(out.split('[redacted]').length - 1, 9)
  assert.match(out, /"msg":"nested"/)
})

function collector(): { sink: Writable; lines: () => Array<Record<string, unknown>>; text: () => string } {
  let out = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString('utf8')
      done()
    },
  })
  return { sink, text: () => out, lines: () => out.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }
}

test('APPTUNNEL_DEBUG turns debug on for the named modules only; the rest stay at the level', () => {
  const c = collector()
  const log = createLogger({ level: 'info', destination: c.sink, debugModules: ['ingress'] })
  const ingress = log.child({ component: 'ingress' })
  const access = log.child({ component: 'access' })
  const cluster = log.child({ component: 'cluster' })
  ingress.debug('ingress detail')
  ingress.child({ tunnelId: 't1' }).debug('nested ingress detail')
  access.debug('access detail')
  cluster.debug('cluster detail')
  log.debug('root detail')
  cluster.info('cluster info')
  assert.deepEqual(
    c.lines().map((l) => l['msg']),
    ['ingress detail', 'nested ingress detail', 'access detail', 'cluster info'],
  )
})

test('APPTUNNEL_DEBUG=* is debug everywhere; an unknown module or format is refused by name', () => {
  const c = collector()
  const log = createLogger({ level: 'warn', destination: c.sink, debugModules: ['*'] })
  log.debug('root')
  log.child({ component: 'cluster' }).debug('cluster')
  assert.deepEqual(c.lines().map((l) => l['msg']), ['root', 'cluster'])

  assert.deepEqual(logOptionsFromEnv({ APPTUNNEL_DEBUG: 'tunnel, cluster' }, false), { debugModules: ['tunnel', 'cluster'], format: 'json' })
  assert.deepEqual(logOptionsFromEnv({}, true), { debugModules: [], format: 'pretty' })
  assert.deepEqual(logOptionsFromEnv({ APPTUNNEL_LOG_FORMAT: 'json' }, true), { debugModules: [], format: 'json' })
  assert.throws(() => logOptionsFromEnv({ APPTUNNEL_DEBUG: 'ingres' }), /APPTUNNEL_DEBUG: unknown module "ingres"; the modules are tunnel, ingress, cluster/)
  assert.throws(() => logOptionsFromEnv({ APPTUNNEL_LOG_FORMAT: 'text' }), /APPTUNNEL_LOG_FORMAT: "text" is not one of json, pretty, auto/)
})

test('pretty format: one readable line per entry, secrets still redacted', () => {
  const c = collector()
  const log = createLogger({ level: 'info', destination: c.sink, format: 'pretty' })
  log.child({ component: 'ingress' }).warn({ tunnelId: 't1', secret: 'S-pretty', note: 'two words' }, 'caller refused')
  const line = c.text().trim()
  assert.equal(c.text().split('\n').length, 2, 'one line')
  assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} {2}WARN {3}ingress {2}caller refused {2}tunnelId=t1 secret=\[redacted\] note="two words"$/)
  assert.ok(!line.includes('S-pretty'))
})

test('colour only on a terminal, and never with NO_COLOR set to anything but the empty string (no-color.org)', () => {
  assert.equal(colorAllowed({ isTTY: true }, {}), true)
  assert.equal(colorAllowed({ isTTY: true }, { NO_COLOR: '' }), true)
  for (const value of ['1', '0', 'true', 'false', 'yes']) assert.equal(colorAllowed({ isTTY: true }, { NO_COLOR: value }), false, `NO_COLOR=${value}`)
  assert.equal(colorAllowed({ isTTY: false }, {}), false)
  assert.equal(colorAllowed({}, {}), false)
})
