import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import { isTunnelError } from '../errors/index.ts'
import { cli } from '../testing/cli-runner.ts'
import { startTestServer, type TestServer } from '../testing/tunnel-harness.ts'
import { AuditRepository, OrgRepository, openDatabase } from './index.ts'

const run = promisify(execFile)

function isStoreError(code: string, ...inMessage: string[]): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isTunnelError(err), `expected a TunnelError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    for (const part of inMessage) assert.ok(err.message.includes(part), `${JSON.stringify(err.message)} names ${part}`)
    return true
  }
}

let root: string
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'apptunnel-store-failures-'))
})
after(async () => {
  await rm(root, { recursive: true, force: true })
})

describe('a full disk', () => {
  test('SQLITE_FULL from any write is TUN_ERR_STORE_DISK_FULL naming the file and its directory; the same write succeeds once there is room', async () => {
    const dir = join(root, 'full-pragma')
    const file = join(dir, 'apptunnel.db')
    const database = await openDatabase(file)
    try {
      await new OrgRepository(database).create({ id: 'org-1', name: 'Acme' })
      const audit = new AuditRepository(database)
      // The engine's own limit on this connection: the file cannot grow past what it has now, so
      // SQLite answers the next growing write with a real SQLITE_FULL.
      const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(database.db)
      await sql.raw(`pragma max_page_count = ${rows[0]!.page_count}`).execute(database.db)
      const event = { orgId: 'org-1', actor: 'token:t', action: 'tunnel.create', details: { padding: randomBytes(32 * 1024).toString('hex') } }
      await assert.rejects(audit.record(event), isStoreError('TUN_ERR_STORE_DISK_FULL', file, `free space on the disk holding ${dir}`))
      await sql`pragma max_page_count = 1073741823`.execute(database.db)
      await audit.record(event)
    } finally {
      await database.close()
    }
  })

  describe('under a real server whose data directory is on a full file system', () => {
    let mountPoint: string | undefined
    let mountRefused: string | false = false
    let server: TestServer | undefined

    before(async () => {
      mountPoint = join(root, 'tmpfs')
      await mkdir(mountPoint)
      try {
        await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint])
      } catch (err) {
        mountRefused = `cannot mount a small tmpfs here (${(err as Error).message.split('\n')[0]}); needs root with CAP_SYS_ADMIN`
        process.stderr.write(`!!! ${mountRefused}: the full-disk server test is SKIPPED\n`)
        mountPoint = undefined
      }
    })

    after(async () => {
      await server?.close()
      if (mountPoint !== undefined) await run('umount', [mountPoint])
    })

    test('the admin API answers 507 TUN_ERR_STORE_DISK_FULL naming the data directory, and so does the CLI', async (t) => {
      if (mountPoint === undefined) return t.skip(mountRefused || 'no tmpfs')
      const dataDir = join(mountPoint, 'data')
      server = await startTestServer({}, dataDir)
      const token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim()
      await fillDisk(join(mountPoint, 'filler'))

      // The first writes may still fit in pages SQLite already has; a few more cannot.
      let answer: { status: number; body: { error?: { code: string; message: string } } } | undefined
      for (let i = 0; i < 50; i++) {
        answer = await adminPost(server, token, '/api/v1/tunnels', { name: `full ${i}`, instanceUrl: `https://app-${i}.example.test/` })
        if (answer.status !== 201) break
      }
      assert.equal(answer?.status, 507, JSON.stringify(answer?.body))
      assert.equal(answer?.body.error?.code, 'TUN_ERR_STORE_DISK_FULL')
      assert.ok(answer?.body.error?.message.includes(`free space on the disk holding ${dataDir}`), answer?.body.error?.message)

      const created = await cli(['tunnel', 'create', '--name', 'one more', '--data-dir', dataDir])
      assert.notEqual(created.code, 0)
      assert.match(created.stderr, /\[TUN_ERR_STORE_DISK_FULL\]/)
      assert.ok(created.stderr.includes(dataDir), created.stderr)
    })
  })
})

/** Writes until the file system answers ENOSPC. */
async function fillDisk(path: string): Promise<void> {
  const handle = await open(path, 'w')
  const chunk = Buffer.alloc(64 * 1024, 0x5a)
  try {
    for (;;) await handle.write(chunk)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err
  } finally {
    await handle.close()
  }
}

function adminPost(server: TestServer, token: string, path: string, body: unknown): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const json = JSON.stringify(body)
    const req = request(
      {
        host: '127.0.0.1',
        port: server.apiAddress.port,
        path,
        method: 'POST',
        ca: server.certificatePem,
        servername: 'localhost',
        agent: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as never }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(json)
  })
}

describe('a damaged database file', () => {
  const PAGE = 4096

  /** A real store with enough rows to span many pages, closed (so everything is in the main file). */
  async function storeWithRows(file: string): Promise<number> {
    const database = await openDatabase(file)
    try {
      await new OrgRepository(database).create({ id: 'org-1', name: 'Acme' })
      const audit = new AuditRepository(database)
      for (let i = 0; i < 400; i++) await audit.record({ orgId: 'org-1', actor: 'token:t', action: 'tunnel.create', target: `tunnel-${i}`, details: { i, note: randomBytes(200).toString('hex') } })
    } finally {
      await database.close()
    }
    return (await stat(file)).size / PAGE
  }

  async function overwritePages(file: string, first: number, count: number): Promise<void> {
    const handle = await open(file, 'r+')
    try {
      await handle.write(randomBytes(count * PAGE), 0, count * PAGE, first * PAGE)
    } finally {
      await handle.close()
    }
  }

  test('pages overwritten with garbage are found at open: TUN_ERR_STORE_CORRUPT naming the file and the restore', async () => {
    const file = join(root, 'damaged-pages', 'apptunnel.db')
    const pages = await storeWithRows(file)
    assert.ok(pages > 40, `the file has ${pages} pages`)
    // Pages in the second half hold audit rows, which opening alone never reads.
    await overwritePages(file, Math.floor(pages / 2), 8)
    await assert.rejects(openDatabase(file), isStoreError('TUN_ERR_STORE_CORRUPT', file, 'restore the file from a backup'))
  })

  test('a damaged header is TUN_ERR_STORE_CORRUPT too, not "cannot reach"', async () => {
    const file = join(root, 'damaged-header', 'apptunnel.db')
    await storeWithRows(file)
    await overwritePages(file, 0, 1)
    await assert.rejects(openDatabase(file), isStoreError('TUN_ERR_STORE_CORRUPT', file, 'restore the file from a backup'))
  })

  test('`apptunnel server` on a damaged data directory exits naming the code, the file and the remedy', async () => {
    const dataDir = join(root, 'damaged-server')
    const file = join(dataDir, 'apptunnel.db')
    const pages = await storeWithRows(file)
    await overwritePages(file, Math.floor(pages / 2), 8)
    const started = await cli(['server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--ingress-listen', '127.0.0.1:0'])
    assert.notEqual(started.code, 0)
    assert.match(started.stderr, /\[TUN_ERR_STORE_CORRUPT\]/)
    assert.ok(started.stderr.includes(file), started.stderr)
    assert.match(started.stderr, /restore the file from a backup/)
  })
})
