import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PATTERN_BLOCK, PatternVerifier } from './pattern.ts'
import { percentile, sortedCopy, spread } from './stats.ts'
import { renderMarkdownTable, renderTable } from './report.ts'

function pattern(n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff
  return out
}

describe('PatternVerifier', () => {
  it('accepts the pattern however it is cut into chunks', () => {
    const body = pattern(300_000)
    const v = new PatternVerifier()
    let pos = 0
    for (const size of [1, 255, 256, 257, 65_536, 70_000, 3]) {
      v.update(body.subarray(pos, pos + size))
      pos += size
    }
    v.update(body.subarray(pos))
    assert.equal(v.bytes, body.length)
    assert.equal(v.mismatchAt, -1)
  })

  it('reports the offset of the first wrong byte, in any chunk', () => {
    const body = pattern(200_000)
    body.writeUInt8(body.readUInt8(131_073) ^ 0x01, 131_073)
    body.writeUInt8(body.readUInt8(150_000) ^ 0x80, 150_000)
    const v = new PatternVerifier()
    for (let pos = 0; pos < body.length; pos += 7_777) v.update(body.subarray(pos, pos + 7_777))
    assert.equal(v.mismatchAt, 131_073)
  })

  it('sends blocks that continue the pattern from one write to the next', () => {
    const v = new PatternVerifier()
    v.update(PATTERN_BLOCK)
    v.update(PATTERN_BLOCK.subarray(0, 1000))
    assert.equal(v.mismatchAt, -1)
  })
})

describe('stats', () => {
  it('percentile picks a measured sample (nearest rank)', () => {
    const s = sortedCopy([5, 1, 4, 2, 3, 10, 9, 8, 7, 6])
    assert.equal(percentile(s, 50), 5)
    assert.equal(percentile(s, 99), 10)
    assert.equal(percentile(s, 0), 1)
    assert.ok(Number.isNaN(percentile(new Float64Array(0), 50)))
  })

  it('spread gives median, min and max of the rounds', () => {
    assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3 })
    assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4 })
  })
})

describe('report', () => {
  const rows = [
    { figure: 'rps', unit: 'rps', direct: { median: 20_000, min: 19_000, max: 21_000 }, tunnel: { median: 10_000, min: 9_000, max: 11_000 }, higherIsBetter: true },
    { figure: 'restart', unit: 's', tunnel: { median: 0.5, min: Number.NaN, max: Number.NaN } },
  ]

  it('prints the ratio to direct beside a compared figure only', () => {
    const text = renderTable(rows)
    assert.match(text, /10,000 \(9,000–11,000\)\s+0\.50 ×/)
    assert.match(text.split('\n')[3]!, /^restart\s+s\s+0\.500\s*$/)
  })

  it('renders the same rows as a Markdown table', () => {
    const md = renderMarkdownTable(rows).split('\n')
    assert.equal(md.length, 4)
    assert.equal(md[2], '| rps | rps | 20,000 (19,000–21,000) | 10,000 (9,000–11,000) | 0.50 × |')
  })
})
