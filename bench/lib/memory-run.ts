import type { Child } from './children.ts'
import type { BulkResult, RequestsResult } from '../load-client.ts'
import type { Progress } from './progress.ts'
import { cpuMsOf, rssSplitKiB, sampleRss } from './proc-stats.ts'
import { spread } from './stats.ts'
import { startBenchAgent, startBenchServer, waitForStatus, type BenchServer, type ProductProcess } from './tunnel-processes.ts'

/**
 * `--memory-only`: what the server and the agent hold idle and under each load, for tunnels whose
 * processes run with different Node flags (the first variant is the product as shipped), all
 * running at once and taking turns round by round, so the variants are compared in one session.
 * The loads: c=50 small GETs, a GET and a POST echo; throughput is printed beside the memory,
 * because what a memory setting costs is speed.
 */
export interface MemoryVariant {
  /** Node flags for the server and the agent */
  flags: string[]
  /** another checkout's bin/apptunnel.js (say, the commit before a change); this one's when absent */
  cli?: string
}

export async function measureMemory(opts: { load: Child; upstreamPort: number; progress: Progress; variants: MemoryVariant[]; rounds: number; durationMs: number; getBytes: number; postBytes: number }): Promise<string> {
  const tunnels: Array<{ name: string; server: BenchServer; agent: ProductProcess; target: { port: number; host: string } }> = []
  const MiB = (kib: number): string => (kib / 1024).toFixed(1)
  try {
    for (const { flags, cli } of opts.variants) {
      const name = [cli === undefined ? 'this checkout' : cli, flags.length === 0 ? 'no Node flags' : flags.join(' ')].join(', ')
      opts.progress.step(`starting a tunnel: ${name}`)
      const server = await startBenchServer({ nodeArgs: flags, ...(cli === undefined ? {} : { cli }) })
      const t = await server.createTunnel('memory')
      const agent = await startBenchAgent(t.key, opts.upstreamPort, 'memory-node', flags, cli)
      tunnels.push({ name, server, agent, target: { port: server.ingressPort, host: t.host } })
      await waitForStatus(server, [t.id], 'CONNECTED', 20_000)
    }
    await new Promise((r) => setTimeout(r, 2000))
    const lines: string[] = []
    const idle = tunnels.map((t) => ({ s: rssSplitKiB(t.server.proc.pid), a: rssSplitKiB(t.agent.pid) }))
    const loads = [
      { label: 'c=50 small GETs', unit: 'rps', cpuUnit: 'µs CPU per request' },
      { label: `GET ${opts.getBytes / 2 ** 20} MiB`, unit: 'MB/s', cpuUnit: 'CPU s per GiB' },
      { label: `POST echo ${opts.postBytes / 2 ** 20} MiB`, unit: 'MB/s', cpuUnit: 'CPU s per GiB' },
    ]
    const results = tunnels.map(() => loads.map(() => ({ speed: [] as number[], cpu: [] as number[], peakServer: 0, peakAgent: 0, peakSum: 0, meanSum: [] as number[] })))
    for (let round = 0; round < opts.rounds; round++) {
      for (let i = 0; i < tunnels.length; i++) {
        const k = (round + i) % tunnels.length
        const t = tunnels[k]!
        for (let l = 0; l < loads.length; l++) {
          opts.progress.step(`${loads[l]!.label} · ${t.name} · round ${round + 1}/${opts.rounds}`)
          const pids = [t.server.proc.pid, t.agent.pid]
          const cpu0 = cpuMsOf(pids)
          const sampler = sampleRss(pids)
          let speed: number
          /** CPU of server + agent per request (µs) or per GiB (s) */
          let per: number
          if (l === 0) {
            const r = await opts.load.call<RequestsResult>({ kind: 'requests', target: t.target, path: '/small', connections: 50, durationMs: opts.durationMs, warmupMs: 500 }, opts.durationMs + 30_000)
            if (r.errors > 0) throw new Error(`${r.errors} requests failed`)
            speed = r.rps
            per = ((cpuMsOf(pids) - cpu0) * 1000) / r.totalRequests
          } else {
            const kind = l === 1 ? 'get' : 'post'
            const r = await opts.load.call<BulkResult>({ kind, target: t.target, bytes: kind === 'get' ? opts.getBytes : opts.postBytes, timeoutMs: 300_000 }, 310_000)
            speed = r.MBps
            per = (cpuMsOf(pids) - cpu0) / 1000 / (r.bytes / 2 ** 30)
          }
          const peak = sampler.stop()
          const slot = results[k]![l]!
          slot.speed.push(speed)
          slot.cpu.push(per)
          slot.peakServer = Math.max(slot.peakServer, peak.peakByPid[0]!)
          slot.peakAgent = Math.max(slot.peakAgent, peak.peakByPid[1]!)
          slot.peakSum = Math.max(slot.peakSum, peak.peakSumKiB)
          slot.meanSum.push(peak.meanSumKiB)
        }
      }
    }
    await new Promise((r) => setTimeout(r, 5000))
    const after = tunnels.map((t) => ({ s: rssSplitKiB(t.server.proc.pid), a: rssSplitKiB(t.agent.pid) }))
    tunnels.forEach((t, k) => {
      const i = idle[k]!
      const a = after[k]!
      lines.push(`${t.name}`)
      lines.push(`  idle, 2 s after start   server ${MiB(i.s.rss)} MiB (anon ${MiB(i.s.anon)}, files ${MiB(i.s.file)})  agent ${MiB(i.a.rss)} MiB (anon ${MiB(i.a.anon)}, files ${MiB(i.a.file)})  sum ${MiB(i.s.rss + i.a.rss)} MiB`)
      loads.forEach((load, l) => {
        const r = results[k]![l]!

        const sp = spread(r.speed)
        lines.push(`  ${load.label.padEnd(22)} peak server ${MiB(r.peakServer)} + agent ${MiB(r.peakAgent)}, sum ${MiB(r.peakSum)} MiB (mean ${MiB(spread(r.meanSum).median)})   ${Math.round(sp.median)} ${load.unit} (${Math.round(sp.min)}–${Math.round(sp.max)}), ${spread(r.cpu).median.toFixed(l === 0 ? 1 : 2)} ${load.cpuUnit}`)
      })
      lines.push(`  idle, 5 s after the loads server ${MiB(a.s.rss)} MiB (anon ${MiB(a.s.anon)})  agent ${MiB(a.a.rss)} MiB (anon ${MiB(a.a.anon)})  sum ${MiB(a.s.rss + a.a.rss)} MiB`)
    })
    return lines.join('\n') + '\n'
  } finally {
    for (const t of tunnels) {
      await t.agent.stop().catch(() => {})
      await t.server.dispose().catch(() => {})
    }
  }
}
