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
    .description('run a whole tunnel on loopback: server, agent and a sample app, in one process')
    .option('--ingress-port <port>', 'ingress port (default: any free port)', '0')
    .option('--check', 'make one request through the tunnel, print the result and exit')
    .option('--log-level <level>', 'log level of the parts', 'warn')
    .action((o: { ingressPort: string; check?: boolean; logLevel: string }) =>
      runCommand(async () => {
        const [{ startServer }, { startAgent }, { createSampleApp }] = await Promise.all([
          import('../server/build-server.ts'),
          import('../agent/build-agent.ts'),
          import('../demo/sample-app.ts'),
        ])
        const log = createLogger({ level: o.logLevel as 'warn', name: 'apptunnel-demo' })
        const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-demo-'))
        const app = createSampleApp()
        await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
        const appPort = (app.address() as { port: number }).port
        const server = await startServer(loadServerConfig({ dataDir, listen: '127.0.0.1:0', ingressListen: `127.0.0.1:${o.ingressPort}`, logLevel: 'warn' }), { log })
        const actor = { orgId: server.orgId, name: 'demo', sourceAddress: '127.0.0.1' }
        const tunnel = await server.tunnels.create(actor, { name: 'demo instance', instanceUrl: `http://127.0.0.1:${appPort}/` })
        const agent = await startAgent(loadAgentConfig({ key: tunnel.key, upstream: `127.0.0.1:${appPort}`, instance: 'demo', dataDir: join(dataDir, 'agent') }), { log })
        const shutdown = async (): Promise<void> => {
          await agent.close()
          await server.close()
          await new Promise<void>((r) => app.close(() => r()))
          await rm(dataDir, { recursive: true, force: true })
        }
        try {
          await agent.waitFor((s) => s.status === 'CONNECTED' || s.status === 'ERROR', 15_000)
          if (agent.status.status !== 'CONNECTED') throw new TunnelError('TUN_ERR_SESSION_LOST', `agent did not connect: ${agent.status.reason}`)
          const hostHeader = new URL(tunnel.applicationLinkUrl).host
          const { host, port } = server.ingressAddress
          const curl = `curl -H 'Host: ${hostHeader}' http://${host}:${port}/`
          if (o.check === true) {
            const res = await fetchThroughTunnel(server.ingressAddress, hostHeader, '/api/whoami')
            process.stdout.write(`demo check: HTTP ${res.status} through the tunnel: ${res.body}\n`)
            if (res.status !== 200) throw new TunnelError('TUN_ERR_UPSTREAM_FAILED', `the demo request answered HTTP ${res.status}`)
            return
          }
          process.stdout.write(
            `apptunnel demo is running (all on loopback).\n\n` +
              `  tunnel:               ${tunnel.name} (${tunnel.id}), agent ${agent.status.status}\n` +
              `  application link URL: ${tunnel.applicationLinkUrl}\n` +
              `  sample app (private): http://127.0.0.1:${appPort}/\n\n` +
              `Open the application link URL in a browser, or run:\n\n  ${curl}\n\nPress Ctrl-C to stop.\n`,
          )
          await closeOnSignal(async () => {})
        } finally {
          await shutdown()
        }
      }),
    )
}
