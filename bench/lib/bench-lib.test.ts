import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PATTERN_BLOCK, PatternVerifier } from './pattern.ts'
import { percentile, sortedCopy, spread } from './stats.ts'
import { renderMarkdownTable, renderTable } from './report.ts'
import { parseCurlWriteOut, parseWrkOutput } from './standard-clients.ts'
import { parentPidOf, processTree } from './proc-stats.ts'
import { ReadSizeCounter, ceilingJson, ceilingRows, coreSecPerGiB, figuresOf, layerCosts, roundOrder, type CeilingSample, type Layer, type ReadSizes } from './ceilings.ts'

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

describe('report with ssh', () => {
  it('adds the ssh column and the tunnel-to-ssh ratio when a row has ssh', () => {
    const rows = [
      { figure: 'rps', unit: 'rps', direct: { median: 20_000, min: 20_000, max: 20_000 }, tunnel: { median: 10_000, min: 10_000, max: 10_000 }, ssh: { median: 5_000, min: 5_000, max: 5_000 }, higherIsBetter: true },
      { figure: 'cpu', unit: 'µs', tunnel: { median: 50, min: 50, max: 50 } },
    ]
    const md = renderMarkdownTable(rows).split('\n')
    assert.equal(md[0], '| figure | unit | direct | tunnel | tunnel / direct | ssh -R | tunnel / ssh |')
    assert.equal(md[2], '| rps | rps | 20,000 | 10,000 | 0.50 × | 5,000 | 2.00 × |')
    assert.equal(md[3], '| cpu | µs |  | 50.0 |  |  |  |')
  })
})

const WRK_REPORT = `Running 5s test @ http://127.0.0.1:34845/small
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.26ms    2.46ms  19.95ms   89.63%
    Req/Sec     8.69k     4.76k   20.06k    80.00%
  Latency Distribution
     50%  103.00us
     75%    1.44ms
     90%    3.79ms
     99%   1.20s
  43275 requests in 5.01s, 9.25MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   8637.72
Transfer/sec:      1.85MB
`

describe('standard clients', () => {
  it('reads wrk --latency reports in any time unit, with errors', () => {
    const r = parseWrkOutput(WRK_REPORT)
    assert.equal(r.requests, 43_275)
    assert.equal(r.seconds, 5.01)
    assert.equal(r.rps, 8637.72)
    assert.ok(Math.abs(r.p50Ms - 0.103) < 1e-9)
    assert.equal(r.p99Ms, 1200)
    assert.equal(r.errors, 7)
  })

  it('a wrk report without errors has none, and one without --latency is refused', () => {
    const clean = WRK_REPORT.replace(/^\s*Socket errors.*\n/m, '').replace(/^\s*Non-2xx.*\n/m, '')
    assert.equal(parseWrkOutput(clean).errors, 0)
    const noLatency = WRK_REPORT.replace(/ {2}Latency Distribution[\s\S]*?(?=\s+43275)/, '')
    assert.throws(() => parseWrkOutput(noLatency), /--latency/)
  })

  it("reads curl's -w line and refuses anything else", () => {
    assert.deepEqual(parseCurlWriteOut('200 268435456 1.234567'), { status: 200, bytes: 268_435_456, seconds: 1.234567 })
    assert.throws(() => parseCurlWriteOut('curl: (7) Failed to connect'), /unexpected -w output/)
  })
})

describe('proc-stats', () => {
  it('finds the parent pid even when the command name holds spaces and parentheses', () => {
    assert.equal(parentPidOf('4242 (sshd: root (x) [priv]) S 17 4242 4242 0 -1 4194560'), 17)
  })

  it('finds this process among the descendants of its parent', () => {
    assert.ok(processTree(process.ppid).includes(process.pid))
    assert.deepEqual(processTree(process.pid).slice(0, 1), [process.pid])
  })
})

describe('ceilings', () => {
  const reads: ReadSizes = { count: 1, meanBytes: 16_384, medianBytes: 16_384, maxBytes: 16_384 }
  const sample = (layer: Layer, seconds: number, relayCpuMs: number, endpointCpuMs: number): CeilingSample => ({ layer, bytes: 2 ** 30, seconds, relayCpuMs, relayCpuMsByProcess: [relayCpuMs / 4, (3 * relayCpuMs) / 4], endpointCpuMs, reads })

  it('counts read sizes exactly and takes the nearest-rank median', () => {
    const c = new ReadSizeCounter()
    for (const n of [16_384, 16_384, 65_536, 100, 16_384]) c.record(n)
    assert.deepEqual(c.summary(), { count: 5, meanBytes: (3 * 16_384 + 65_536 + 100) / 5, medianBytes: 16_384, maxBytes: 65_536 })
    assert.deepEqual(new ReadSizeCounter().summary(), { count: 0, meanBytes: 0, medianBytes: 0, maxBytes: 0 })
  })

  it('turns transfers into MB/s and core-seconds per GiB, per layer over its rounds', () => {
    const f = figuresOf([sample('raw', 0.5, 0, 800), sample('raw', 1, 0, 900), sample('raw', 2, 0, 1000), sample('tls', 2, 0, 2000)])
    assert.deepEqual([...f.keys()], ['raw', 'tls'])
    assert.equal(f.get('raw')!.MBps.median, 2 ** 30 / 1e6)
    assert.equal(f.get('raw')!.MBps.max, (2 * 2 ** 30) / 1e6)
    assert.deepEqual(f.get('raw')!.endpointCoreSecPerGiB, { median: 0.9, min: 0.8, max: 1 })
    assert.equal(coreSecPerGiB(1500, 2 ** 29), 3)
  })

  it('prices each layer over the one below from the medians', () => {
    const f = figuresOf([sample('raw', 1, 0, 800), sample('pipe', 1, 1500, 800), sample('tls', 1, 0, 2000), sample('tlsRelay', 1, 4000, 800), sample('tunnel', 1, 5000, 800)])
    const costs = new Map(layerCosts(f).map((c) => [c.label, c.coreSecPerGiB]))
    assert.equal(costs.get('one JavaScript relay hop (pipe relay over raw TCP)'), 1.5)
    assert.ok(Math.abs(costs.get('encrypt + decrypt at the ends (one TLS connection over raw TCP)')! - 1.2) < 1e-9)
    assert.equal(costs.get('… over two pipe hops (TLS in JavaScript relays)'), 1)
    assert.equal(costs.get('tunnel over the bare TLS relay (framing, mux, HTTP, our JavaScript)'), 1)
    assert.ok(Number.isNaN(layerCosts(figuresOf([sample('raw', 1, 0, 800)]))[0]!.coreSecPerGiB))
  })

  it('prints each layer with the tunnel and ssh beside it, and their ratios', () => {
    const f = figuresOf([sample('raw', 0.5, 0, 800), sample('tlsRelay', 4, 4000, 800), sample('tunnel', 4, 4000, 800), sample('ssh', 2, 2000, 800)])
    const md = renderMarkdownTable(ceilingRows(f, { bytes: 2 ** 30, cipher: 'TLSv1.3 TLS_AES_256_GCM_SHA384' })).split('\n')
    assert.ok(md.includes('| ceiling: raw TCP | MB/s | 2,147 | 268 | 0.13 × | 537 | 0.50 × |'))
    assert.ok(md.includes('| … relay CPU, bare TLS relay (TCP → Node → TLS → Node → TCP) | core-s/GiB | 4.00 | 4.00 | 1.00 × | 2.00 | 2.00 × |'))
    assert.ok(md.some((l) => l.startsWith('| ceiling: bare TLS relay (TCP → Node → TLS → Node → TCP) (TLSv1.3 TLS_AES_256_GCM_SHA384) | MB/s |')))
    assert.ok(md.includes('| cost per GiB: tunnel over the bare TLS relay (framing, mux, HTTP, our JavaScript) | core-s/GiB | 0.000 |  |  |  |  |'))
    assert.ok(md.includes('| … app side: TLS relay back (encrypts) / tunnel agent | core-s/GiB | 3.00 | 3.00 | 1.00 × |  |  |'))
    assert.equal(ceilingJson(f).ceilingTunnelRelayCpuSecPerGiB, 4)
  })

  it('starts each round at the next layer', () => {
    assert.deepEqual(roundOrder(['a', 'b', 'c'], 0), ['a', 'b', 'c'])
    assert.deepEqual(roundOrder(['a', 'b', 'c'], 4), ['b', 'c', 'a'])
  })
})
