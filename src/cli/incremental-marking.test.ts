import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, it } from 'node:test'
import { fullCollectionsAtTheLimitOnly } from './incremental-marking.ts'

/**
 * In a fresh Node process: V8 grows the young generation (many objects survive scavenges), the old
 * generation holds some live data, then a bulk-like load allocates 16 KiB buffers and small objects
 * that all die young. Counts the collections of that load by kind.
 */
function collectionsUnderBulk(turnOff: boolean): { grownMiB: number; major: number; minor: number; incremental: number } {
  const module = new URL('./incremental-marking.ts', import.meta.url).href
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks'
    import { getHeapSpaceStatistics } from 'node:v8'
    const { fullCollectionsAtTheLimitOnly } = await import(${JSON.stringify(module)})
    const counts = { major: 0, minor: 0, incremental: 0 }
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) counts.major++
        else if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) counts.minor++
        else if (e.detail.kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) counts.incremental++
      }
    })
    observer.observe({ entryTypes: ['gc'] })
    const turn = () => new Promise((r) => setImmediate(r))
    let keep = []
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 100000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 40000) keep = [] }
      await turn()
    }
    keep = []
    const old = Array.from({ length: 100000 }, (_, i) => ({ i, s: 'o' + i }))
    ${turnOff ? 'fullCollectionsAtTheLimitOnly({ execArgv: [], nodeOptions: undefined })' : ''}
    await turn(); await turn()
    const before = { ...counts }
    const grownMiB = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20
    let bytes = 0
    for (let round = 0; round < 1000; round++) {
      for (let i = 0; i < 40; i++) { const b = Buffer.allocUnsafe(16384); const part = { b, i, payload: b.subarray(9) }; bytes += part.payload.length }
      await turn()
    }
    await turn()
    observer.disconnect()
    process.stdout.write(JSON.stringify({ grownMiB, major: counts.major - before.major, minor: counts.minor - before.minor, incremental: counts.incremental - before.incremental, live: old.length, bytes }))
  `
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
  return JSON.parse(out) as { grownMiB: number; major: number; minor: number; incremental: number }
}

describe('full collections at the limit only', () => {
  const nodeMajor = Number(process.versions.node.split('.')[0])
  it('a bulk load after the young generation grew runs scavenges and no incremental marking', { skip: nodeMajor > 22 ? `not applied on Node ${nodeMajor}` : false }, (t) => {
    const on = collectionsUnderBulk(false)
    t.diagnostic(`with V8's incremental marking: ${JSON.stringify(on)}`)
    const off = collectionsUnderBulk(true)
    t.diagnostic(`without: ${JSON.stringify(off)}`)
    // The case shows what is turned off: V8's own marking starts under this load although the old
    // generation holds the same live data throughout.
    assert.ok(on.incremental > 0, `with incremental marking the load starts marking (${JSON.stringify(on)})`)
    assert.ok(off.grownMiB >= 8, `the young generation grew before the load (${off.grownMiB} MiB)`)
    assert.ok(off.minor > 0, 'the load ran scavenges')
    // A full collection may still come when a limit is reached (V8 then marks in one pause); what
    // is gone is marking started by the young generation's size.
    assert.equal(off.incremental, 0, 'no incremental marking step')
  })

  it("leaves V8's marking alone when the operator's Node flags chose", () => {
    assert.equal(fullCollectionsAtTheLimitOnly({ execArgv: ['--incremental-marking'], nodeOptions: undefined }), false)
    assert.equal(fullCollectionsAtTheLimitOnly({ execArgv: [], nodeOptions: '--no-incremental-marking' }), false)
    assert.equal(fullCollectionsAtTheLimitOnly({ execArgv: [], nodeOptions: '--no_incremental_marking --max-old-space-size=200' }), false)
  })

  it('leaves it alone on Node lines newer than measured', () => {
    assert.equal(fullCollectionsAtTheLimitOnly({ execArgv: [], nodeOptions: undefined }, 24), false)
    assert.equal(fullCollectionsAtTheLimitOnly({ execArgv: [], nodeOptions: undefined }, 26), false)
  })
})
