/**
 * Many agents in one process (forked by run.ts), for figures that need hundreds of sessions: a
 * process per agent would measure process start-up, not the tunnel. Each is the real agent
 * (startAgent), with its own node id and one TLS session (the figures are per session).
 *
 * IPC in:  { start: [{ key, nodeId }], upstreamPort }  |  { close: true }
 * IPC out: { connected: n, total: n } on every change of the count of CONNECTED agents
 */
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { loadAgentConfig } from '../src/config/agent-config.ts'

const agents: TunnelAgent[] = []
let connected = 0
let reported = -1

function report(): void {
  if (connected === reported) return
  reported = connected
  process.send?.({ connected, total: agents.length })
}

process.on('message', (msg: { start?: Array<{ key: string; nodeId: string }>; upstreamPort?: number; close?: boolean }) => {
  if (msg.start !== undefined) {
    void (async () => {
      for (const { key, nodeId } of msg.start!) {
        const agent = await startAgent(loadAgentConfig({ key, upstream: `127.0.0.1:${msg.upstreamPort}`, nodeId, sessions: 1, logLevel: 'silent' }))
        let up = false
        agent.onStatus((s) => {
          const nowUp = s.status === 'CONNECTED'
          if (nowUp !== up) connected += nowUp ? 1 : -1
          up = nowUp
          report()
        })
        agents.push(agent)
      }
      report()
    })()
  } else if (msg.close === true) {
    void Promise.all(agents.map((a) => a.close())).then(() => process.send?.({ closed: true }))
  }
})
process.on('disconnect', () => process.exit(0))
