import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { errorCatalog } from './codes.ts'
import { TunnelError } from './tunnel-error.ts'

test('every error code is documented in docs/errors.md, and every documented code exists', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  const documented = new Set([...doc.matchAll(/`(TUN_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]))
  for (const code of Object.keys(errorCatalog)) assert.ok(documented.has(code), `${code} is missing from docs/errors.md`)
  for (const code of documented) assert.ok(code! in errorCatalog, `docs/errors.md names ${code}, which does not exist`)
})

test('codes follow TUN_ERR_<AREA>_<WHAT> and a TunnelError carries status and retryable from the catalog', () => {
  for (const code of Object.keys(errorCatalog)) assert.match(code, /^TUN_ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/)
  const e = new TunnelError('TUN_ERR_INGRESS_NO_SESSION')
  assert.equal(e.httpStatus, 503)
  assert.equal(e.retryable, true)
  assert.deepEqual(e.toJSON(), { error: { code: 'TUN_ERR_INGRESS_NO_SESSION', message: 'the tunnel has no live agent session' } })
})
