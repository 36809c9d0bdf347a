import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { serverEntry, writeServerInfo, type ServerInfo } from './server-info-file.ts'

const info = (port: number): ServerInfo => ({ url: `https://localhost:${port}`, publicUrl: 'https://tunnel.example.test', certificateFile: '/data/server.crt', ingress: '127.0.0.1:8080' })

test('server.json is replaced whole: a reader polling while it is rewritten never finds it empty or cut', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-info-'))
  try {
    const file = await writeServerInfo(dataDir, info(1))
    assert.equal(file, join(dataDir, 'server.json'))
    assert.equal(await readFile(file, 'utf8'), JSON.stringify(info(1), null, 2) + '\n')
    let reads = 0
    let writing = true
    const reader = (async () => {
      while (writing) {
        const text = await readFile(file, 'utf8')
        assert.doesNotThrow(() => JSON.parse(text), `a read found ${JSON.stringify(text)}`)
        reads++
      }
    })()
    for (let port = 2; port < 200; port++) await writeServerInfo(dataDir, info(port))
    writing = false
    await reader
    assert.ok(reads > 0)
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), info(199))
    assert.deepEqual(await readdir(dataDir), ['server.json'], 'nothing left aside')
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})

test("the entry names the console and only those credential files this data directory holds", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-info-'))
  try {
    assert.deepEqual(await serverEntry(dataDir, 'https://tunnel.example.test:8443'), {
      consoleUrl: 'https://tunnel.example.test:8443/console/',
      consoleUser: 'admin',
      consolePasswordFile: undefined,
      adminTokenFile: undefined,
    })
    await writeFile(join(dataDir, 'admin-token'), 'secret\n')
    await writeFile(join(dataDir, 'console-admin-password'), 'secret\n')
    const entry = await serverEntry(dataDir, 'https://tunnel.example.test/')
    assert.equal(entry.consolePasswordFile, join(dataDir, 'console-admin-password'))
    assert.equal(entry.adminTokenFile, join(dataDir, 'admin-token'))
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})
