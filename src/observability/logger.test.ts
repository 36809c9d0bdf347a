import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { createLogger } from './logger.ts'

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
