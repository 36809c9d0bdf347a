import assert from 'node:assert/strict'
import { TunnelError } from '../errors/index.ts'

/** Runs fn, asserts it throws a configuration error, and returns the message for matching. */
export function configError(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof TunnelError)
    assert.equal(err.code, 'TUN_ERR_CONFIG_INVALID')
    return err.message
  }
  assert.fail('expected a configuration error')
}
