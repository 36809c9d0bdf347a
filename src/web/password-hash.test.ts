import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEFAULT_SCRYPT_PARAMS, generatePassword, hashPassword, needsRehash, passwordProblem, verifyPassword } from './password-hash.ts'

// Cheap parameters keep the suite fast; the defaults are exercised once below.
const FAST = { N: 1024, r: 8, p: 1 }

test('a hash verifies its own password and no other', async () => {
  const stored = await hashPassword('correct horse battery staple', FAST)
  assert.equal(await verifyPassword('correct horse battery staple', stored), true)
  assert.equal(await verifyPassword('correct horse battery stapl', stored), false)
  assert.equal(await verifyPassword('', stored), false)
})

test('the stored form carries the parameters and a fresh salt per hash', async () => {
  const a = await hashPassword('same password', FAST)
  const b = await hashPassword('same password', FAST)
  assert.match(a, /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/)
  assert.notEqual(a, b, 'salts differ')
  assert.equal(await verifyPassword('same password', b), true)
})

test('the default parameters are used and verified', async () => {
  const stored = await hashPassword('default parameters')
  assert.ok(stored.startsWith(`scrypt$${DEFAULT_SCRYPT_PARAMS.N}$${DEFAULT_SCRYPT_PARAMS.r}$${DEFAULT_SCRYPT_PARAMS.p}$`))
  assert.equal(await verifyPassword('default parameters', stored), true)
  assert.equal(needsRehash(stored), false)
  assert.equal(needsRehash(await hashPassword('x', FAST)), true, 'weaker parameters ask for a rehash')
})

test('malformed or missing stored values never match', async () => {
  const good = await hashPassword('pw', FAST)
  for (const bad of [undefined, '', 'plain', good.replace('scrypt', 'bcrypt'), good.replace('$1024$', '$1000$'), good.slice(0, -4), good.replace('$8$', '$0$')]) {
    assert.equal(await verifyPassword('pw', bad), false, String(bad))
  }
  assert.equal(await verifyPassword('x'.repeat(2000), good), false, 'over-long passwords are refused before hashing')
})

test('generated passwords are long and distinct; chosen ones need 12 characters', () => {
  const a = generatePassword()
  assert.equal(a.length, 24)
  assert.notEqual(a, generatePassword())
  assert.match(passwordProblem('short') ?? '', /at least 12/)
  assert.equal(passwordProblem('twelve chars'), undefined)
})
