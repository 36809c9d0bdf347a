import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { tlsPolicy } from '../../src/transport/tls-policy.ts'
import type { Certificate, SinkResult } from '../ceiling-process.ts'
import { forkChild, type Child } from './children.ts'
import { ceilingJson, ceilingRows, figuresOf, roundOrder, type CeilingSample, type Layer } from './ceilings.ts'
import { cpuMsOf } from './proc-stats.ts'
import type { Progress } from './progress.ts'
import type { Row } from './report.ts'
import { sshPeerInstalled, startSshPeer, type SshPeer } from './ssh-peer.ts'
import { startBenchAgent, startBenchServer, waitForStatus, type BenchServer, type ProductProcess } from './tunnel-processes.ts'

/**
 * `--ceilings`: one source and one sink process, and between them, round by round in rotating
 * order, each layer the tunnel is made of: nothing (raw TCP), a Node process piping TCP, one TLS
 * connection, a bare TLS relay (two Node processes, TLS between them), the tunnel itself (server
 * and agent through the CLI) and ssh -R. CPU is read from /proc for the relaying processes and for
 * the ends, around every transfer.
 */

const WARMUP_BYTES = 64 * 2 ** 20

/** progress steps measureCeilings takes */
export function ceilingSteps(rounds: number): number {
  const layers = 5 + (sshPeerInstalled() ? 1 : 0)
  return 2 + rounds * layers
}

interface Path {
  layer: Layer
  port: number
  host: string
  tls: boolean
  relayPids: () => number[]
}

export async function measureCeilings(opts: { progress: Progress; rounds: number; bytes: number }): Promise<{ rows: Row[]; json: Record<string, number>; cipher: string }> {
  const children: Child[] = []
  let server: BenchServer | undefined
  let agent: ProductProcess | undefined
  let peer: SshPeer | undefined
  try {
    opts.progress.step('ceilings: starting a source, a sink, the relays, a tunnel and ssh -R')
    server = await startBenchServer()
    // The server's own certificate (ECDSA P-256, made on its first start), for every TLS layer.
    const certificate: Certificate = {
      cert: await readFile(join(server.dataDir, 'server.crt'), 'utf8'),
      key: await readFile(join(server.dataDir, 'server.key'), 'utf8'),
    }
    const fork = async (): Promise<Child> => {
      const c = await forkChild('ceiling-process.ts')
      children.push(c)
      return c
    }
    const [source, sink, pipe, tlsBack, tlsFront] = await Promise.all([fork(), fork(), fork(), fork(), fork()])
    const src = await source.call<{ port: number; tlsPort: number }>({ kind: 'source', certificate }, 10_000)
    const pipePort = (await pipe.call<{ port: number }>({ kind: 'relay', target: src.port, connectTls: false }, 10_000)).port
    const backPort = (await tlsBack.call<{ port: number }>({ kind: 'relay', target: src.port, listenTls: certificate, connectTls: false }, 10_000)).port
    const frontPort = (await tlsFront.call<{ port: number }>({ kind: 'relay', target: backPort, connectTls: true }, 10_000)).port

    const tunnel = await server.createTunnel('ceilings')
    agent = await startBenchAgent(tunnel.key, src.port, 'ceilings-node')
    await waitForStatus(server, [tunnel.id], 'CONNECTED', 20_000)
    const session = await negotiated(server.apiPort)

    const local = (port: number): string => `127.0.0.1:${port}`
    const serverPid = server.proc.pid
    const agentPid = agent.pid
    const paths: Path[] = [
      { layer: 'raw', port: src.port, host: local(src.port), tls: false, relayPids: () => [] },
      { layer: 'pipe', port: pipePort, host: local(pipePort), tls: false, relayPids: () => [pipe.pid] },
      { layer: 'tls', port: src.tlsPort, host: local(src.tlsPort), tls: true, relayPids: () => [] },
      { layer: 'tlsRelay', port: frontPort, host: local(frontPort), tls: false, relayPids: () => [tlsFront.pid, tlsBack.pid] },
      { layer: 'tunnel', port: server.ingressPort, host: tunnel.host, tls: false, relayPids: () => [serverPid, agentPid] },
    ]
    const p = await startSshPeer(src.port)
    if ('unavailable' in p) opts.progress.note(`ssh -R not measured: ${p.unavailable}`)
    else {
      peer = p
      paths.push({ layer: 'ssh', port: p.port, host: local(src.port), tls: false, relayPids: () => p.pids() })
    }

    const transfer = (path: Path, bytes: number): Promise<SinkResult> =>
      sink.call<SinkResult>({ kind: 'sink', port: path.port, host: path.host, tls: path.tls, bytes, timeoutMs: 120_000 }, 130_000)

    opts.progress.step(`ceilings: warm-up, ${WARMUP_BYTES / 2 ** 20} MiB through every layer`)
    let tlsSeen = ''
    for (const path of paths) {
      const r = await transfer(path, WARMUP_BYTES)
      if (path.tls) tlsSeen = `${r.protocol} ${r.cipher}`
    }
    if (tlsSeen !== session) throw new Error(`ceilings: the TLS layers negotiated ${tlsSeen}, the agent's session ${session}`)

    const samples: CeilingSample[] = []
    for (let round = 0; round < opts.rounds; round++) {
      for (const path of roundOrder(paths, round)) {
        opts.progress.step(`ceilings: ${path.layer} · round ${round + 1}/${opts.rounds}`)
        const relayPids = path.relayPids()
        const endPids = [source.pid, sink.pid]
        const relay0 = relayPids.map((pid) => cpuMsOf([pid]))
        const ends0 = cpuMsOf(endPids)
        const r = await transfer(path, opts.bytes)
        const byProcess = relayPids.map((pid, i) => cpuMsOf([pid]) - relay0[i]!)
        samples.push({ layer: path.layer, bytes: r.bytes, seconds: r.seconds, relayCpuMs: byProcess.reduce((a, b) => a + b, 0), relayCpuMsByProcess: byProcess, endpointCpuMs: cpuMsOf(endPids) - ends0, reads: r.reads })
      }
    }
    const figures = figuresOf(samples)
    return { rows: ceilingRows(figures, { bytes: opts.bytes, cipher: session }), json: ceilingJson(figures), cipher: session }
  } finally {
    await peer?.stop().catch(() => {})
    await agent?.stop().catch(() => {})
    await server?.dispose().catch(() => {})
    for (const c of children) await c.stop().catch(() => {})
  }
}

/** What an agent's session negotiates with this server: the same TLS options, the same listener. */
function negotiated(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...tlsPolicy, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error('ceilings: no TLS handshake with the server within 5 s'))
    }, 5000)
    s.once('secureConnect', () => {
      clearTimeout(timer)
      resolve(`${s.getProtocol()} ${s.getCipher().standardName}`)
      s.destroy()
    })
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}
