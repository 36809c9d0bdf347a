import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Child } from './children.ts'
import type { BulkResult, RequestsResult } from '../load-client.ts'
import { startBenchAgent, startBenchServer, waitForStatus } from './tunnel-processes.ts'
import { runCurl, writePatternFile } from './standard-clients.ts'

interface CpuProfile {
  startTime: number
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>
  samples: number[]
  timeDeltas: number[]
}

/**
 * Where a function lives, without this machine's paths: Node internals by module and line, our
 * code as "apptunnel" (the bundle's chunk names mean nothing to a reader), packages by name.
 */
function whereOf(url: string, lineNumber: number): string {
  if (url === '') return ''
  if (url.startsWith('node:')) return ` ${url}:${lineNumber + 1}`
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return ` [${pkg[1]}]`
  return ' [apptunnel]'
}

/** Self time by function, heaviest first, as "share of busy time" lines. */
export function summariseProfile(profile: CpuProfile, windowUs: [number, number] | undefined, top = 12): { busyMs: number; lines: string[] } {
  const byNode = new Map<number, string>()
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber } = n.callFrame
    byNode.set(n.id, `${functionName || '(anonymous)'}${whereOf(url, lineNumber)}`)
  }
  const self = new Map<string, number>()
  let busy = 0
  // Sample times are on the same monotonic clock as process.hrtime in the load client, so start-up
  // and shutdown fall outside the window and do not pollute the picture.
  let t = profile.startTime
  profile.samples.forEach((id, i) => {
    const name = byNode.get(id) ?? '?'
    const dt = profile.timeDeltas[i] ?? 0
    t += dt
    if (windowUs !== undefined && (t < windowUs[0] || t > windowUs[1])) return
    if (name.startsWith('(idle)')) return
    busy += dt
    self.set(name, (self.get(name) ?? 0) + dt)
  })
  const lines = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => `${((100 * us) / busy).toFixed(1).padStart(5)} %  ${name}`)
  return { busyMs: busy / 1000, lines }
}

/**
 * A fresh server and agent started with --cpu-prof, one load, then both stopped so V8 writes its
 * profiles; prints where each spent its busy time and what that is per request or per MB.
 */
export async function profileRun(
  opts: { upstreamPort: number; load: Child; kind: 'requests'; durationMs: number } | { upstreamPort: number; load: Child; kind: 'get' | 'post'; bytes: number; client?: 'load' | 'curl' },
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-prof-'))
  const serverDir = join(dir, 'server')
  const agentDir = join(dir, 'agent')
  const server = await startBenchServer({ nodeArgs: ['--cpu-prof', '--cpu-prof-dir', serverDir] })
  let agent
  try {
    const t = await server.createTunnel('profile')
    agent = await startBenchAgent(t.key, opts.upstreamPort, 'profile-node', ['--cpu-prof', '--cpu-prof-dir', agentDir])
    await waitForStatus(server, [t.id], 'CONNECTED', 20_000)
    const target = { port: server.ingressPort, host: t.host }
    let per: { divisor: number; unit: string }
    let title: string
    let windowUs: [number, number]
    if (opts.kind === 'requests') {
      const r = await opts.load.call<RequestsResult>({ kind: 'requests', target, path: '/small', connections: 50, durationMs: opts.durationMs, warmupMs: 500 }, opts.durationMs + 30_000)
      per = { divisor: r.requests, unit: 'µs per request' }
      windowUs = r.windowUs
      title = `c=50 small GETs, ${Math.round(r.rps)} rps`
    } else if (opts.client === 'curl') {
      // The same monotonic clock as the profiles' sample times (as in the load client).
      let uploadFile: string | undefined
      if (opts.kind === 'post') {
        uploadFile = join(dir, 'upload.bin')
        await writePatternFile(uploadFile, opts.bytes)
      }
      const t0 = Number(process.hrtime.bigint() / 1000n)
      const r = await runCurl({ kind: opts.kind, port: target.port, host: target.host, bytes: opts.bytes, ...(uploadFile === undefined ? {} : { uploadFile }), timeoutMs: 300_000 })
      per = { divisor: r.bytes / 1e6, unit: 'ms per MB' }
      windowUs = [t0, Number(process.hrtime.bigint() / 1000n)]
      title = `${opts.kind === 'get' ? 'GET' : 'POST echo'} ${opts.bytes / 2 ** 20} MiB with curl, ${Math.round(r.MBps)} MB/s`
    } else {
      const r = await opts.load.call<BulkResult>({ kind: opts.kind, target, bytes: opts.bytes, timeoutMs: 300_000 }, 310_000)
      per = { divisor: r.bytes / 1e6, unit: 'ms per MB' }
      windowUs = r.windowUs
      title = `${opts.kind === 'get' ? 'GET' : 'POST echo'} ${opts.bytes / 2 ** 20} MiB, ${Math.round(r.MBps)} MB/s`
    }
    await agent.stop()
    await server.proc.stop()
    const out: string[] = [`profile: ${title}`]
    for (const [who, d] of [['server', serverDir], ['agent', agentDir]] as const) {
      const files = (await readdir(d)).filter((f) => f.endsWith('.cpuprofile'))
      if (files.length === 0) {
        out.push(`  ${who}: no profile written`)
        continue
      }
      const p = JSON.parse(await readFile(join(d, files[0]!), 'utf8')) as CpuProfile
      const s = summariseProfile(p, windowUs, opts.kind === 'requests' ? 12 : 20)
      const perUnit = opts.kind === 'requests' ? (s.busyMs * 1000) / per.divisor : s.busyMs / per.divisor
      out.push(`  ${who}: ${s.busyMs.toFixed(0)} ms busy in the measured window (${perUnit.toFixed(opts.kind === 'requests' ? 1 : 3)} ${per.unit}); top self time:`)
      out.push(...s.lines.map((l) => `    ${l}`))
    }
    return out.join('\n') + '\n'
  } finally {
    await agent?.stop().catch(() => {})
    await server.dispose().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}
