import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import { loadAgentConfig } from '../config/agent-config.ts'
import { loadServerConfig } from '../config/server-config.ts'
import { TunnelError } from '../errors/index.ts'
import { createLogger } from '../observability/index.ts'
import { closeOnSignal, runCommand } from './run-command.ts'

/** GET through the ingress with the tunnel's Host, as a linked product would. */
function fetchThroughTunnel(ingress: { host: string; port: number }, hostHeader: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ingress.host, port: ingress.port, path, headers: { host: hostHeader }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a whole tunnel on loopback in one process: server, a two-node on-prem instance sharing one database, and a sample app')
    .option('--ingress-port <port>', 'ingress port (default: any free port)', '0')
    .option('--check', 'make one request through the tunnel, print the result and exit')
    .option('--log-level <level>', 'log level of the parts', 'warn')
    .action((o: { ingressPort: string; check?: boolean; logLevel: string }) =>
      runCommand(async () => {
        const [{ startServer }, { startAgent }, { createSampleApp }, { openDatabase }, { InstanceAdmin }, { formatInstanceStatus }] = await Promise.all([
          import('../server/start-server.ts'),
          import('../agent/start-agent.ts'),
          import('../demo/sample-app.ts'),
          import('../store/index.ts'),
          import('../agent/instance/instance-admin.ts'),
          import('./key-commands.ts'),
        ])
        const log = createLogger({ level: o.logLevel as 'warn', name: 'apptunnel-demo' })
        // Each part is undone as soon as it exists, so a failure anywhere in the set-up (a busy
        // --ingress-port, say) still ends the process with its error instead of leaving it running.
        const undo: Array<() => Promise<void>> = []
        const shutdown = async (): Promise<void> => {
          for (const step of undo.reverse()) await step().catch(() => {})
        }
        try {
          const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-demo-'))
          undo.push(() => rm(dataDir, { recursive: true, force: true }))
          const app = createSampleApp()
          await new Promise<void>((resolve, reject) => {
            app.once('error', reject)
            app.listen(0, '127.0.0.1', () => {
              app.off('error', reject)
              resolve()
            })
          })
          undo.push(() => new Promise<void>((r) => app.close(() => r())))
          const appPort = (app.address() as { port: number }).port
          const server = await startServer(loadServerConfig({ dataDir, listen: '127.0.0.1:0', ingressListen: `127.0.0.1:${o.ingressPort}`, logLevel: 'warn' }), { log })
          undo.push(() => server.close())
          const actor = { orgId: server.orgId, name: 'demo', sourceAddress: '127.0.0.1' }
          const tunnel = await server.tunnels.create(actor, { name: 'demo instance', instanceUrl: `http://127.0.0.1:${appPort}/` })
          // The on-prem side as a cluster would run it: the key added once to the instance database
          // (what `apptunnel key add` does), and two agent nodes that pick it up from there.
          const instanceDb = join(dataDir, 'instance.db')
          const instance = await openDatabase(instanceDb)
          undo.push(() => instance.close())
          const admin = new InstanceAdmin(instance)
          await admin.addKey(tunnel.key, 'demo')
          const nodes: Array<Awaited<ReturnType<typeof startAgent>>> = []
          for (const nodeId of ['node-1', 'node-2']) {
            const node = await startAgent(
              loadAgentConfig({ upstream: `127.0.0.1:${appPort}`, instance: 'demo', database: instanceDb, nodeId, dataDir: join(dataDir, nodeId), nodeHeartbeatMs: 1000 }),
              { log },
            )
            nodes.push(node)
            undo.push(() => node.close())
          }
          for (const node of nodes) {
            await node.waitFor((s) => (s.status === 'CONNECTED' && s.sessions === s.sessionsWanted) || s.status === 'ERROR', 15_000)
            if (node.status.status !== 'CONNECTED') throw new TunnelError('TUN_ERR_SESSION_LOST', `agent node ${node.nodeId} did not connect: ${node.status.reason}`)
          }
          // Every node has written its status row once it is connected; the instance view reads them.
          const deadline = Date.now() + 5000
          let view = await admin.status()
          while ((view.status !== 'CONNECTED' || view.nodes.some((n) => n.sessions < n.sessionsWanted)) && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 100))
            view = await admin.status()
          }
          const hostHeader = new URL(tunnel.applicationLinkUrl).host
          const { host, port } = server.ingressAddress
          const curl = `curl -H 'Host: ${hostHeader}' http://${host}:${port}/`
          if (o.check === true) {
            const res = await fetchThroughTunnel(server.ingressAddress, hostHeader, '/api/whoami')
            process.stdout.write(`demo check: instance ${view.status} (${view.reason}); HTTP ${res.status} through the tunnel: ${res.body}\n`)
            if (res.status !== 200) throw new TunnelError('TUN_ERR_UPSTREAM_FAILED', `the demo request answered HTTP ${res.status}`)
            return
          }
          // Before the text that says how to stop it, so a Ctrl-C right after it is graceful.
          const stopped = closeOnSignal(async () => {})
          process.stdout.write(
            `apptunnel demo is running (all on loopback).\n\n` +
              `  tunnel:               ${tunnel.name} (${tunnel.id})\n` +
              `  application link URL: ${tunnel.applicationLinkUrl}\n` +
              `  sample app (private): http://127.0.0.1:${appPort}/\n\n` +
              `The on-prem instance, as apptunnel key status --database ${instanceDb} shows it:\n\n` +
              formatInstanceStatus(view).replace(/^(?=.)/gm, '  ') +
              `\nOpen the application link URL in a browser, or run:\n\n  ${curl}\n\nPress Ctrl-C to stop.\n`,
          )
          await stopped
        } finally {
          await shutdown()
        }
      }),
    )
}
