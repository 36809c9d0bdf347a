import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FieldNameSet } from './field-name-set.ts'

test('a name matches in any letter case, only at its own length, also inside a longer text', () => {
  const set = new FieldNameSet(['te', 'x-forwarded-for'])
  assert.equal(set.has('TE'), true)
  assert.equal(set.has('X-Forwarded-FOR'), true)
  assert.equal(set.has('tee'), false)
  assert.equal(set.has('t'), false)
  assert.equal(set.has('x-forwarded-fox'), false)
  const line = 'Accept: */*\r\nTe: trailers'
  assert.equal(set.hasAt(line, 13, 2), true)
  assert.equal(set.hasAt(line, 0, 6), false)
})

test('names that are not lowercase field names are refused where the set is made', () => {
  assert.throws(() => new FieldNameSet(['Connection']), /"Connection" is not a lowercase field name/)
  assert.throws(() => new FieldNameSet(['x_y']), /not a lowercase field name/)
})
