import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { openDatabase } from './index.ts'

const ROOT = new URL('../../', import.meta.url).pathname
// Bounds a hung child; never reached when the test passes.
const CHILD_LIMIT_MS = 30_000

// Another process on the same file, with its own connection and file locks: for each line on stdin
// it tries one write without waiting for a lock (busy timeout 0), and answers "written" or the
// SQLite code it got.
const WRITER = `
import { createInterface } from 'node:readline'
import BetterSqlite3 from 'better-sqlite3'
const db = new BetterSqlite3(process.argv[1], { timeout: 0 })
process.stdout.write('ready\\n')
let n = 0
for await (const _ of createInterface({ input: process.stdin })) {
  try {
    db.prepare('insert into security_property (property_key, property_value) values (?, ?)').run('other.' + ++n, 'x')
    process.stdout.write('written\\n')
  } catch (err) {
    process.stdout.write(String(err.code) + '\\n')
  }
}
db.close()
`

test('a SQLite transaction holds the write lock from its start: another process writing meanwhile waits, and the transaction never fails on a stale snapshot', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-sqlite-tx-'))
  const file = join(dir, 'store.sqlite')
  const database = await openDatabase(file)
  const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, file], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'], timeout: CHILD_LIMIT_MS })
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (): Promise<string> => {
    const line = await lines.next()
    if (line.done === true) throw new Error(`the writer exited early (${String(await exited)})`)
    return line.value
  }
  try {
    assert.equal(await next(), 'ready')
    let otherWrite = ''
    // What a read-then-write transaction (TunnelRepository.create) does: read, then write. Between
    // the two, another process commits a write. A deferred BEGIN takes a read snapshot at the first
    // read and lets the other write through; this transaction's own write then fails with
    // SQLITE_BUSY_SNAPSHOT, which no busy timeout retries.
    await database.db.transaction().execute(async (trx) => {
      await trx.selectFrom('security_property').selectAll().execute()
      child.stdin.write('write\n')
      otherWrite = await next()
      await trx.insertInto('security_property').values({ property_key: 'mine', property_value: 'y' }).execute()
    })
    assert.equal(otherWrite, 'SQLITE_BUSY', 'the other process could not write while the transaction was open')
    const rows = await database.db.selectFrom('security_property').select('property_key').where('property_key', '=', 'mine').execute()
    assert.equal(rows.length, 1)
    // Committed, the lock is free again for the other process.
    child.stdin.write('write\n')
    assert.equal(await next(), 'written')
  } finally {
    child.stdin.end()
    await exited
    await database.close()
    await rm(dir, { recursive: true, force: true })
  }
})
