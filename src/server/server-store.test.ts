import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { OrgRepository } from '../store/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { generateSelfSigned } from '../transport/self-signed-certificate.ts'
import { openServerStore } from './server-store.ts'

checkNoLeakedHandles()

const log = silentLogger()

function configIn(dataDir: string, extra: { tlsCertFile?: string; tlsKeyFile?: string } = {}) {
  return { dataDir, database: join(dataDir, 'apptunnel.db'), orgName: 'acme', publicUrl: 'https://tunnel.example.test', listen: { host: '0.0.0.0', port: 0 }, tlsCertFile: undefined, tlsKeyFile: undefined, ...extra }
}

test('a first start makes the data directory, the org, the bootstrap admin token and a self-signed certificate; a second start finds them', async () => {
  const root = await mkdtemp(join(tmpdir(), 'apptunnel-store-'))
  const dataDir = join(root, 'data')
  try {
    const first = await openServerStore(configIn(dataDir), { log })
    const token = await readFile(join(dataDir, 'admin-token'), 'utf8')
    try {
      assert.equal((await stat(dataDir)).mode & 0o777, 0o700)
      assert.equal((await stat(join(dataDir, 'admin-token'))).mode & 0o777, 0o600)
      assert.equal(first.org.orgName, 'acme')
      assert.equal((await new OrgRepository(first.database).first())?.id, first.org.orgId)
      assert.equal(first.cert.selfSigned, true)
      assert.match(first.certificatePin ?? '', /./, 'a self-signed certificate comes with the pin agents check')
    } finally {
      await first.database.close()
    }
    const again = await openServerStore({ ...configIn(dataDir), orgName: 'renamed' }, { log })
    try {
      assert.deepEqual(again.org, first.org, 'the org is the one made at the first start')
      assert.equal(await readFile(join(dataDir, 'admin-token'), 'utf8'), token, 'no second token')
      assert.equal(again.cert.cert, first.cert.cert)
      assert.equal(again.certificatePin, first.certificatePin)
    } finally {
      await again.database.close()
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
})

test('a configured certificate is used as it is, with no pin; one that cannot be read fails the start', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-store-'))
  try {
    const { cert, key } = await generateSelfSigned(['tunnel.example.test'])
    await writeFile(join(dataDir, 'my.crt'), cert)
    await writeFile(join(dataDir, 'my.key'), key)
    const store = await openServerStore(configIn(dataDir, { tlsCertFile: join(dataDir, 'my.crt'), tlsKeyFile: join(dataDir, 'my.key') }), { log })
    try {
      assert.equal(store.cert.cert, cert)
      assert.equal(store.cert.selfSigned, false)
      assert.equal(store.certificatePin, undefined)
    } finally {
      await store.database.close()
    }
    await assert.rejects(openServerStore(configIn(dataDir, { tlsCertFile: join(dataDir, 'missing.crt'), tlsKeyFile: join(dataDir, 'my.key') }), { log }), { code: 'ENOENT' })
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})
