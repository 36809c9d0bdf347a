// docs/operations.md promises that every command in it is run by a test or by CI. Each command block
// carries a comment naming what runs it; this file checks those comments and runs the blocks no CI
// step runs: the SQLite backup taken while the server runs, and the recovery of a damaged file,
// each restored as the doc says and proven by an agent with the tunnel's old key getting through.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { AuditRepository, openDatabase } from '../src/store/index.ts'
import { docBlockWith, docBlocks } from '../src/testing/doc-blocks.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const DOC = new URL('../docs/operations.md', import.meta.url)
const ROOT = new URL('..', import.meta.url).pathname
/** What a data directory must keep besides the database (the certificate the keys pin). */
const CERTIFICATE_FILES = ['server.crt', 'server.key']

test('every command block of docs/operations.md names what runs it, and that runner exists and reads the doc', () => {
  const commands = docBlocks(DOC).filter((b) => ['sh', 'ini', 'conf'].includes(b.info))
  assert.ok(commands.length >= 8, `command blocks found: ${commands.length}`)
  for (const b of commands) {
    const where = `docs/operations.md:${b.line} (${b.heading})`
    assert.ok(b.marker !== undefined, `${where}: no <!-- run by … --> comment above the block`)
    const m = /^(?:ExecStart )?run by ((?:scripts|e2e)\/\S+?)(?=[,; ]|$)|^not run as written: .+/.exec(b.marker)
    assert.ok(m !== null, `${where}: the comment must say "run by <file>" or "not run as written: <why and what runs instead>": ${b.marker}`)
    for (const path of b.marker.match(/(?:scripts|e2e)\/[\w./-]+\.(?:mjs|ts|sh)/g) ?? []) assert.ok(existsSync(join(ROOT, path)), `${where}: ${path} does not exist`)
    if (m[1] !== undefined) assert.match(readFileSync(join(ROOT, m[1]), 'utf8'), /operations\.md/, `${where}: ${m[1]} does not read docs/operations.md`)
  }
})

/**
 * Runs a documented block in bash as an interactive shell would (no pipefail: `.dump` of a damaged
 * file exits non-zero after writing what it could read), with the doc's data directory replaced.
 */
function runBlock(body: string, cwd: string, dataDir = cwd): void {
  const r = spawnSync('bash', ['-eu', '-c', body.replaceAll('/var/lib/apptunnel', dataDir)], { cwd, encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.status, 0, `${body}\nexited ${r.status ?? r.signal}: ${r.error?.message ?? ''}${r.stderr} (the sqlite3 shell is the Debian package sqlite3)`)
}

describe('docs/operations.md: SQLite backups and a damaged file, with the sqlite3 shell', () => {
  let root: string
  let upstream: TestUpstream
  let original: TestServer
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
  let ports: { listen: string; ingressListen: string }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-operations-'))
    upstream = await startTestUpstream()
    original = await startTestServer({}, join(root, 'original'))
    ports = { listen: `127.0.0.1:${original.apiAddress.port}`, ingressListen: `127.0.0.1:${original.ingressAddress.port}` }
    tunnel = await original.createTunnel('backed up')
  })
  after(async () => {
    await original?.close()
    await upstream?.close()
    if (root !== undefined) await rm(root, { recursive: true, force: true })
  })

  /**
   * A server on `dataDir` at the original's address (the key names it): the tunnel's agent must
   * connect with its old key, which also proves the certificate came back, and a request go through.
   */
  async function provenByTheOldKey(dataDir: string): Promise<void> {
    const restored = await startTestServer(ports, dataDir)
    try {
      const agent = await startTestAgent(tunnel.key, upstream.address, { sessions: 1 })
      try {
        await agent.waitFor((s) => s.status === 'CONNECTED')
        const res = await ingressRequest(restored.ingressAddress, tunnel.hostHeader, { path: '/hello' })
        assert.equal(res.status, 200)
      } finally {
        await agent.close()
      }
    } finally {
      await restored.close()
    }
  }

  async function dataDirWith(name: string, database: string, from: string): Promise<string> {
    const dir = join(root, name)
    await mkdir(dir)
    await copyFile(database, join(dir, 'apptunnel.db'))
    for (const f of CERTIFICATE_FILES) await copyFile(join(from, f), join(dir, f))
    return dir
  }

  test('Backups: the copy taken while the server runs restores the tunnels and the certificate', async () => {
    const dataDir = join(root, 'original')
    runBlock(docBlockWith(DOC, '.backup').body, root, dataDir)
    const copy = join(dataDir, 'copy.db')
    assert.ok((await stat(copy)).size > 0)
    await original.close()
    await provenByTheOldKey(await dataDirWith('restored', copy, dataDir))
  })

  test('A damaged SQLite file: `.dump` saves the rows around the damaged pages into a file the server starts on', async () => {
    // The backup of the test above, grown past its first pages with audit rows (as
    // months of use would), then damaged in its second half (audit rows, not the tunnel).
    const dir = join(root, 'recover')
    await mkdir(dir)
    const damaged = join(dir, 'damaged.db')
    await copyFile(join(root, 'original', 'copy.db'), damaged)
    const database = await openDatabase(damaged)
    try {
      const audit = new AuditRepository(database)
      for (let i = 0; i < 300; i++) await audit.record({ orgId: original.orgId, actor: 'token:t', action: 'tunnel.update', target: tunnel.id, details: { i, note: 'x'.repeat(400) } })
    } finally {
      await database.close()
    }
    const PAGE = 4096
    const pages = (await stat(damaged)).size / PAGE
    assert.ok(pages > 40, `${pages} pages`)
    const handle = await open(damaged, 'r+')
    try {
      await handle.write(Buffer.alloc(4 * PAGE, 0xa5), 0, 4 * PAGE, Math.floor(pages * 0.75) * PAGE)
    } finally {
      await handle.close()
    }
    await assert.rejects(openDatabase(damaged), (err: Error & { code?: string }) => err.code === 'TUN_ERR_STORE_CORRUPT')

    runBlock(docBlockWith(DOC, '.dump').body, dir)
    await provenByTheOldKey(await dataDirWith('recovered', join(dir, 'recovered.db'), join(root, 'original')))
  })
})
