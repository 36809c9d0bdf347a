import assert from 'node:assert/strict'
import fc from 'fast-check'
import { TunnelError, errorCatalog, type ErrorCode } from '../errors/index.ts'

/** The file's fixed seed, so CI is repeatable; FUZZ_SEED=<n> explores another sequence. */
export function fuzzSeed(fileDefault: number): number {
  return Number(process.env['FUZZ_SEED'] ?? fileDefault)
}

/** A refusal the way every parser must refuse: a TunnelError from the catalog, one of `codes`, with a message a person can act on. */
export function assertTunnelError(err: unknown, codes: readonly ErrorCode[]): asserts err is TunnelError {
  assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
  assert.ok(Object.hasOwn(errorCatalog, err.code), `${err.code} is in the catalog`)
  assert.ok(codes.includes(err.code), `code ${err.code} (${err.message}) is one of ${codes.join(', ')}`)
  assert.equal(err.httpStatus, errorCatalog[err.code].httpStatus)
  assert.ok(err.message.trim().length > 10, `unclear message: ${JSON.stringify(err.message)}`)
}

/** Runs work: its value, or the refusal (checked with assertTunnelError); any other exception fails the property. */
export function outcome<T>(work: () => T, codes: readonly ErrorCode[]): { value: T } | { error: TunnelError } {
  try {
    return { value: work() }
  } catch (err) {
    assertTunnelError(err, codes)
    return { error: err }
  }
}

/** Sorted cut points inside [0, length]; chunks between them may be empty. */
export function cutsOf(length: number): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 0, max: length }), { maxLength: 10 }).map((cs) => [...cs, length].sort((a, b) => a - b))
}
