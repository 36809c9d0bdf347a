import assert from 'node:assert/strict'
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createLogger } from '../../observability/index.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { AccessLog, millisText } from './access-log.ts'

checkNoLeakedHandles()

const conn = { tunnelId: 'abc123', clientAddress: '127.0.0.1', forwardedFrom: undefined }

describe('AccessLog: the writer behind --access-log', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-access-writer-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('past its bound it drops and counts lines instead of queueing them, says so once, and writes the rest whole', async () => {
    const warnings: string[] = []
    const sink = { write: (s: string) => (warnings.push(s), true) } as unknown as NodeJS.WritableStream
    const file = join(dir, 'bounded.log')
    const log = await AccessLog.open(file, { log: createLogger({ level: 'warn', destination: sink }), maxBufferedBytes: 64 * 1024 })
    // All in one turn of the event loop: nothing can reach the disk meanwhile, as with a stalled disk.
    const total = 2000
    for (let i = 0; i < total; i++) {
      const r = log.begin('GET', `/item/${i}?secret=${i}`, 100)
      r.status = 200
      log.write(r, conn)
    }
    assert.ok(log.dropped > 0 && log.dropped < total, `some lines dropped: ${log.dropped}`)
    assert.equal(log.lines, total - log.dropped, 'every line is either taken or dropped')
    await log.close()
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '')
    assert.equal(lines.length, total - log.dropped)
    // The first lines made it, in order; each is whole JSON.
    assert.deepEqual(lines.slice(0, 3).map((l) => (JSON.parse(l) as { path: string }).path), ['/item/0', '/item/1', '/item/2'])
    assert.equal(warnings.filter((w) => w.includes('access log cannot keep up')).length, 1)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
  })

  test('reopen() after a rename: the next lines go to a new file at the path, none is lost', async () => {
    const file = join(dir, 'rotated.log')
    const log = await AccessLog.open(file, { log: createLogger({ level: 'silent' }) })
    const line = (path: string) => {
      const r = log.begin('GET', path, 10)
      r.status = 204
      log.write(r, conn)
    }
    line('/one')
    await new Promise((r) => setTimeout(r, 50))
    await rename(file, `${file}.1`)
    line('/two')
    log.reopen()
    line('/three')
    await log.close()
    const paths = async (f: string) => (await readFile(f, 'utf8')).split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { path: string }).path)
    const old = await paths(`${file}.1`)
    const fresh = await paths(file)
    assert.deepEqual([...old, ...fresh], ['/one', '/two', '/three'])
    assert.deepEqual(fresh.slice(-1), ['/three'])
  })

  test('each line carries its own fields when they change from one line to the next', async () => {
    const file = join(dir, 'changing.log')
    const log = await AccessLog.open(file, { log: createLogger({ level: 'silent' }) })
    const conns = [conn, { tunnelId: 'other"tunnel', clientAddress: '::1', forwardedFrom: undefined }, { tunnelId: undefined, clientAddress: '10.0.0.7', forwardedFrom: undefined }]
    const sessions = [{ sessionId: 's-1', nodeId: 'n1' }, undefined, { sessionId: 's-2' }]
    const methods = ['GET', 'POST', null]
    for (let i = 0; i < 9; i++) {
      const r = log.begin(methods[i % 3]!, '/x', 10)
      r.session = sessions[Math.floor(i / 3)]
      log.write(r, conns[i % 3]!)
    }
    await log.close()
    const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.equal(lines.length, 9)
    lines.forEach((l, i) => {
      assert.equal(l['tunnel'], conns[i % 3]!.tunnelId ?? null, `line ${i}: tunnel`)
      assert.equal(l['client'], conns[i % 3]!.clientAddress, `line ${i}: client`)
      assert.equal(l['method'], methods[i % 3], `line ${i}: method`)
      assert.equal(l['session'], sessions[Math.floor(i / 3)]?.sessionId ?? null, `line ${i}: session`)
      assert.equal(l['node'], sessions[Math.floor(i / 3)]?.nodeId ?? null, `line ${i}: node`)
    })
  })

  test('durations are written as String(us / 1000) would write them', () => {
    for (let us = 0; us < 2_100_000; us++) {
      if (millisText(us) !== String(us / 1000)) assert.fail(`${us} µs: ${millisText(us)}, not ${us / 1000}`)
    }
    assert.equal(millisText(86_400_000_123), '86400000.123')
  })

  test('a path and ids needing escapes stay valid JSON', async () => {
    const file = join(dir, 'escapes.log')
    const log = await AccessLog.open(file, { log: createLogger({ level: 'silent' }) })
    const r = log.begin('GET', '/a"b\\c\u0001\u00e9', 10)
    log.write(r, { tunnelId: undefined, clientAddress: '::1', forwardedFrom: 'replica "x"' }, 'TUN_ERR_X', true)
    await log.close()
    const parsed = JSON.parse((await readFile(file, 'utf8')).trim()) as Record<string, unknown>
    assert.equal(parsed['path'], '/a"b\\c\u0001\u00e9')
    assert.equal(parsed['forwardedFrom'], 'replica "x"')
    assert.equal(parsed['tunnel'], null)
    assert.equal(parsed['incomplete'], true)
  })
})
