import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, it } from 'node:test'
import { holdYoungGenerationWhileStarting } from './young-generation.ts'

/**
 * In a fresh Node process: the young generation's size (MiB) at the start, after allocating objects
 * of which many survive a scavenge (what makes V8 grow it) while held, and after the same once
 * allowed to grow.
 */
function sizesAfterChurn(hold: boolean): { start: number; starting: number; started: number } {
  const module = new URL('./young-generation.ts', import.meta.url).href
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8'
    const { holdYoungGenerationWhileStarting, youngGenerationMayGrow } = await import(${JSON.stringify(module)})
    const size = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20
    const churn = async () => {
      let keep = []
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 100000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20000) keep = [] }
        await new Promise((r) => setImmediate(r))
      }
    }
    const start = size()
    ${hold ? 'holdYoungGenerationWhileStarting({ execArgv: [], nodeOptions: undefined })' : ''}
    await churn()
    const starting = size()
    youngGenerationMayGrow()
    await churn()
    process.stdout.write(JSON.stringify({ start, starting, started: size() }))
  `
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
  return JSON.parse(out) as { start: number; starting: number; started: number }
}

describe('the young generation while starting', () => {
  it('stays at its size while the process starts, and grows with the load once it started', () => {
    const free = sizesAfterChurn(false)
    assert.ok(free.starting >= 4 * free.start, `unheld, the churn grows the young generation (${free.start} → ${free.starting} MiB)`)
    const held = sizesAfterChurn(true)
    // Node 26's V8 may still round it up by a page or so; unheld, it grows 4 to 50 times.
    assert.ok(held.starting < 2 * held.start, `held near ${held.start} MiB while starting, got ${held.starting} MiB`)
    assert.ok(held.started >= 4 * held.start, `grows again once started (${held.start} → ${held.started} MiB)`)
  })

  it('leaves the young generation alone when the operator sized it with a Node flag', () => {
    assert.equal(holdYoungGenerationWhileStarting({ execArgv: ['--max-semi-space-size=16'], nodeOptions: undefined }), false)
    assert.equal(holdYoungGenerationWhileStarting({ execArgv: [], nodeOptions: '--max_semi_space_size=8 --enable-source-maps' }), false)
    assert.equal(holdYoungGenerationWhileStarting({ execArgv: ['--semi-space-growth-factor=3'], nodeOptions: undefined }), false)
  })
})
