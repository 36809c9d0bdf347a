import type { Row } from './report.ts'
import { spread, type Spread } from './stats.ts'

/**
 * The figures of `--ceilings`: the same bulk transfer (a source sends N bytes, a sink counts them)
 * through each layer the tunnel is built from, so that what each layer costs per GiB can be read
 * off one run. Pure: the processes and the timing live in bench/lib/ceilings-run.ts
 * and bench/ceiling-process.ts.
 */

/** the layers, from the floor up; the tunnel and ssh -R are measured over the same source and sink */
export const LAYERS = ['raw', 'pipe', 'tls', 'tlsRelay', 'tunnel', 'ssh'] as const
export type Layer = (typeof LAYERS)[number]

export const LAYER_LABEL: Record<Layer, string> = {
  raw: 'raw TCP',
  pipe: 'TCP pipe relay (one Node process)',
  tls: 'one TLS connection',
  tlsRelay: 'bare TLS relay (TCP → Node → TLS → Node → TCP)',
  tunnel: 'tunnel (server + agent)',
  ssh: 'ssh -R',
}

/** One transfer through one layer. */
export interface CeilingSample {
  layer: Layer
  bytes: number
  seconds: number
  /** CPU of the processes that relay (none for raw TCP and one TLS connection), ms */
  relayCpuMs: number
  /**
   * The same per process, the caller's side first: the tunnel's server then agent, the TLS relay's
   * front (decrypts, like the server) then back (encrypts, like the agent)
   */
  relayCpuMsByProcess: number[]
  /** CPU of the source and the sink, ms */
  endpointCpuMs: number
  /** the sink's reads: how big the chunks were that the runtime handed to JavaScript */
  reads: ReadSizes
}

export interface ReadSizes {
  count: number
  meanBytes: number
  medianBytes: number
  maxBytes: number
}

/**
 * Counts the sizes of the chunks a 'data' handler sees. Exact sizes, not buckets: a socket read is
 * at most 64 KiB, so there are few distinct sizes and the median is one that was seen.
 */
export class ReadSizeCounter {
  readonly #bySize = new Map<number, number>()
  #count = 0
  #bytes = 0

  record(size: number): void {
    this.#bySize.set(size, (this.#bySize.get(size) ?? 0) + 1)
    this.#count++
    this.#bytes += size
  }

  summary(): ReadSizes {
    if (this.#count === 0) return { count: 0, meanBytes: 0, medianBytes: 0, maxBytes: 0 }
    const sizes = [...this.#bySize.keys()].sort((a, b) => a - b)
    // Nearest rank, as bench/lib/stats.ts does: the median is a size that was read.
    const rank = Math.ceil(this.#count / 2)
    let seen = 0
    let median = sizes[sizes.length - 1]!
    for (const s of sizes) {
      seen += this.#bySize.get(s)!
      if (seen >= rank) {
        median = s
        break
      }
    }
    return { count: this.#count, meanBytes: this.#bytes / this.#count, medianBytes: median, maxBytes: sizes[sizes.length - 1]! }
  }
}

/** The figures of one layer over its rounds. */
export interface LayerFigures {
  MBps: Spread
  /** CPU of the relaying processes per GiB moved (0 where nothing relays) */
  relayCoreSecPerGiB: Spread
  /** the caller's side and the app's side of a two-process relay */
  callerSideCoreSecPerGiB: Spread
  appSideCoreSecPerGiB: Spread
  endpointCoreSecPerGiB: Spread
  readMedianKiB: Spread
  readMeanKiB: Spread
}

const GiB = 2 ** 30

export function coreSecPerGiB(cpuMs: number, bytes: number): number {
  return cpuMs / 1000 / (bytes / GiB)
}

/** Medians and ranges per layer, for the layers that were measured. */
export function figuresOf(samples: readonly CeilingSample[]): Map<Layer, LayerFigures> {
  const out = new Map<Layer, LayerFigures>()
  for (const layer of LAYERS) {
    const list = samples.filter((s) => s.layer === layer)
    if (list.length === 0) continue
    out.set(layer, {
      MBps: spread(list.map((s) => s.bytes / 1e6 / s.seconds)),
      relayCoreSecPerGiB: spread(list.map((s) => coreSecPerGiB(s.relayCpuMs, s.bytes))),
      callerSideCoreSecPerGiB: spread(list.map((s) => coreSecPerGiB(s.relayCpuMsByProcess[0] ?? Number.NaN, s.bytes))),
      appSideCoreSecPerGiB: spread(list.map((s) => coreSecPerGiB(s.relayCpuMsByProcess[1] ?? Number.NaN, s.bytes))),
      endpointCoreSecPerGiB: spread(list.map((s) => coreSecPerGiB(s.endpointCpuMs, s.bytes))),
      readMedianKiB: spread(list.map((s) => s.reads.medianBytes / 1024)),
      readMeanKiB: spread(list.map((s) => s.reads.meanBytes / 1024)),
    })
  }
  return out
}

/**
 * What each layer adds per GiB over the one below it, from the medians: the relay hop in
 * JavaScript, encryption and decryption at the ends, TLS on a relay's far side, and our framing on
 * top of the bare TLS relay. NaN where a layer was not measured.
 */
export function layerCosts(f: Map<Layer, LayerFigures>): { label: string; coreSecPerGiB: number }[] {
  const relay = (l: Layer): number => f.get(l)?.relayCoreSecPerGiB.median ?? Number.NaN
  const ends = (l: Layer): number => f.get(l)?.endpointCoreSecPerGiB.median ?? Number.NaN
  return [
    { label: 'one JavaScript relay hop (pipe relay over raw TCP)', coreSecPerGiB: relay('pipe') },
    { label: 'encrypt + decrypt at the ends (one TLS connection over raw TCP)', coreSecPerGiB: ends('tls') - ends('raw') },
    { label: 'bare TLS relay: two hops, each with TLS on one side', coreSecPerGiB: relay('tlsRelay') },
    { label: '… over two pipe hops (TLS in JavaScript relays)', coreSecPerGiB: relay('tlsRelay') - 2 * relay('pipe') },
    { label: 'tunnel over the bare TLS relay (framing, mux, HTTP, our JavaScript)', coreSecPerGiB: relay('tunnel') - relay('tlsRelay') },
  ]
}

/**
 * Table rows in the bench's shape: the direct column holds the layer named in the row, the tunnel
 * and ssh columns hold the tunnel and ssh -R over the same source and sink in the same rounds, so
 * the ratio columns read "tunnel / this layer" and "tunnel / ssh".
 */
export function ceilingRows(f: Map<Layer, LayerFigures>, opts: { bytes: number; cipher: string }): Row[] {
  const rows: Row[] = [{ figure: `ceilings, ${opts.bytes / 2 ** 20} MiB source → sink (direct column: the layer in the row; tunnel, ssh -R: same ends)`, unit: '' }]
  const tunnel = f.get('tunnel')
  const ssh = f.get('ssh')
  const label = (l: Layer): string => (l === 'tls' || l === 'tlsRelay' ? `${LAYER_LABEL[l]} (${opts.cipher})` : LAYER_LABEL[l])
  for (const layer of ['raw', 'pipe', 'tls', 'tlsRelay'] as const) {
    const x = f.get(layer)
    if (x === undefined) continue
    const row = (figure: string, unit: string, pick: (y: LayerFigures) => Spread, higherIsBetter: boolean): Row => ({
      figure,
      unit,
      direct: pick(x),
      ...(tunnel === undefined ? {} : { tunnel: pick(tunnel) }),
      ...(ssh === undefined ? {} : { ssh: pick(ssh) }),
      higherIsBetter,
    })
    rows.push(row(`ceiling: ${label(layer)}`, 'MB/s', (y) => y.MBps, true))
    if (layer === 'pipe' || layer === 'tlsRelay') rows.push(row(`… relay CPU, ${LAYER_LABEL[layer]}`, 'core-s/GiB', (y) => y.relayCoreSecPerGiB, false))
    if (layer === 'tlsRelay') {
      const side = (figure: string, pick: (y: LayerFigures) => Spread): Row => ({ figure, unit: 'core-s/GiB', direct: pick(x), ...(tunnel === undefined ? {} : { tunnel: pick(tunnel) }), higherIsBetter: false })
      rows.push(side('… caller side: TLS relay front (decrypts) / tunnel server', (y) => y.callerSideCoreSecPerGiB))
      rows.push(side('… app side: TLS relay back (encrypts) / tunnel agent', (y) => y.appSideCoreSecPerGiB))
    }
    else rows.push({ figure: `… source + sink CPU, ${LAYER_LABEL[layer]}`, unit: 'core-s/GiB', direct: x.endpointCoreSecPerGiB })
    rows.push({ figure: `… the sink's 'data' chunks, median`, unit: 'KiB', direct: x.readMedianKiB })
  }
  for (const [layer, x] of [['tunnel', tunnel], ['ssh', ssh]] as const) {
    if (x === undefined) continue
    rows.push({ figure: `… ${LAYER_LABEL[layer]}: source + sink CPU`, unit: 'core-s/GiB', ...(layer === 'tunnel' ? { tunnel: x.endpointCoreSecPerGiB } : { ssh: x.endpointCoreSecPerGiB }) })
    rows.push({ figure: `… ${LAYER_LABEL[layer]}: the sink's 'data' chunks, median`, unit: 'KiB', ...(layer === 'tunnel' ? { tunnel: x.readMedianKiB } : { ssh: x.readMedianKiB }) })
  }
  for (const c of layerCosts(f)) {
    if (Number.isFinite(c.coreSecPerGiB)) rows.push({ figure: `cost per GiB: ${c.label}`, unit: 'core-s/GiB', direct: { median: c.coreSecPerGiB, min: Number.NaN, max: Number.NaN } })
  }
  return rows
}

/** The JSON fields of `--ceilings` (medians). */
export function ceilingJson(f: Map<Layer, LayerFigures>): Record<string, number> {
  const json: Record<string, number> = {}
  const r2 = (n: number): number => Math.round(n * 100) / 100
  for (const [layer, x] of f) {
    const key = layer.charAt(0).toUpperCase() + layer.slice(1)
    json[`ceiling${key}MBps`] = Math.round(x.MBps.median)
    json[`ceiling${key}RelayCpuSecPerGiB`] = r2(x.relayCoreSecPerGiB.median)
    json[`ceiling${key}EndpointCpuSecPerGiB`] = r2(x.endpointCoreSecPerGiB.median)
    if (Number.isFinite(x.appSideCoreSecPerGiB.median)) {
      json[`ceiling${key}CallerSideCpuSecPerGiB`] = r2(x.callerSideCoreSecPerGiB.median)
      json[`ceiling${key}AppSideCpuSecPerGiB`] = r2(x.appSideCoreSecPerGiB.median)
    }
  }
  return json
}

/** Round r measures the layers starting at a different one each time, so warm-up and drift favour none. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length
  return Array.from({ length: n }, (_, i) => items[(round + i) % n]!)
}
