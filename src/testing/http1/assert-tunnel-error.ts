import assert from 'node:assert/strict'
import { TunnelError } from '../../errors/index.ts'
import type { ErrorCode } from '../../errors/index.ts'

/** Runs `work`, which must throw a TunnelError with `code` and, if given, a message matching `message`. */
export function assertTunnelError(work: () => unknown, code: ErrorCode, message?: string | RegExp, context = ''): TunnelError {
  let caught: unknown
  try {
    work()
  } catch (err) {
    caught = err
  }
  if (caught === undefined) assert.fail(`${context}expected ${code}, nothing was thrown`)
  if (!(caught instanceof TunnelError)) throw caught
  assert.equal(caught.code, code, `${context}code (message: ${caught.message})`)
  if (typeof message === 'string') assert.equal(caught.message, message, `${context}message`)
  else if (message !== undefined) assert.match(caught.message, message, `${context}message`)
  return caught
}
