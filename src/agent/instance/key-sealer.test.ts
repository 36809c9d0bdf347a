import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { KeySealer, openStoredKey } from './key-sealer.ts'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apptunnel-sealer-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

const KEY = 'atk1_eyJ2IjoxLCJ1IjoiaHR0cHM6Ly90dW5uZWwuZXhhbXBsZS50ZXN0In0'

test('seal then open gives the key back; the stored form names the key file and hides the key; every seal differs', () => {
  const sealer = new KeySealer(Buffer.alloc(32, 1))
  const a = sealer.seal(KEY)
  const b = sealer.seal(KEY)
  assert.match(a, new RegExp(`^enc:v1:${sealer.kid}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$`))
  assert.notEqual(a, b, 'a fresh IV each time')
  assert.ok(!a.includes(KEY) && !a.includes('eyJ2'))
  assert.equal(sealer.open(a), KEY)
  assert.equal(KeySealer.kidOf(a), sealer.kid)
  assert.equal(openStoredKey(KEY, undefined), KEY, 'a plain stored key passes through')
})

test('another key file, a damaged value, or no key file: TUN_ERR_KEY_SEALED with what to do', () => {
  const sealer = new KeySealer(Buffer.alloc(32, 1))
  const sealed = sealer.seal(KEY)
  assert.throws(() => new KeySealer(Buffer.alloc(32, 2)).open(sealed), { code: 'TUN_ERR_KEY_SEALED', message: /encrypted with key file [0-9a-f]{8}, this node has key file [0-9a-f]{8}: give every node the same --key-encryption-file/ })
  const parts = sealed.split(':')
  const body = Buffer.from(parts[4]!, 'base64url')
  body[0]! ^= 1
  const tampered = [...parts.slice(0, 4), body.toString('base64url')].join(':')
  assert.throws(() => sealer.open(tampered), { code: 'TUN_ERR_KEY_SEALED', message: /does not decrypt/ })
  assert.throws(() => sealer.open(parts.slice(0, 4).join(':') + ':'), { code: 'TUN_ERR_KEY_SEALED', message: /damaged/ })
  assert.throws(() => openStoredKey(sealed, undefined), { code: 'TUN_ERR_KEY_SEALED', message: /encrypted \(key file [0-9a-f]{8}\) and this node has no --key-encryption-file/ })
})

test('key files: written owner-only and never overwritten; read in base64 or base64url; a bad file is a config error naming it', async () => {
  const file = join(dir, 'instance.key')
  const written = await KeySealer.writeNewFile(file)
  assert.equal((await stat(file)).mode & 0o777, 0o600)
  assert.match(await readFile(file, 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/)
  assert.equal((await KeySealer.fromFile(file)).kid, written.kid)
  await assert.rejects(KeySealer.writeNewFile(file), { code: 'TUN_ERR_CLI_USAGE', message: /exists already/ })
  const urlForm = join(dir, 'url.key')
  await writeFile(urlForm, Buffer.alloc(32, 0xfb).toString('base64url'))
  assert.equal((await KeySealer.fromFile(urlForm)).kid, new KeySealer(Buffer.alloc(32, 0xfb)).kid)
  const bad = join(dir, 'bad.key')
  await writeFile(bad, 'not a key\n')
  await assert.rejects(KeySealer.fromFile(bad), { code: 'TUN_ERR_CONFIG_INVALID', message: /bad\.key must hold 32 bytes in base64/ })
  await assert.rejects(KeySealer.fromFile(join(dir, 'missing.key')), { code: 'TUN_ERR_CONFIG_INVALID', message: /cannot read .*missing\.key: ENOENT/ })
})
