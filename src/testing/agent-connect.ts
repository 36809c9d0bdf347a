import { request as httpsRequest } from 'node:https'
import { AGENT_UPGRADE_TOKEN, formatAgentAuthorization } from '../protocol/index.ts'

export type ConnectResult = { status: number; code: string | undefined }

/** One agent connect over TLS from 127.0.0.1: 101 (the socket is closed at once) or the refusal. */
export function agentConnect(server: { apiAddress: { port: number }; certificatePem: string }, tunnelId: string, secret: Buffer): Promise<ConnectResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port: server.apiAddress.port,
      path: '/agent/v1/connect',
      ca: server.certificatePem,
      servername: 'localhost',
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: AGENT_UPGRADE_TOKEN,
        Authorization: formatAgentAuthorization(tunnelId, secret),
        'x-apptunnel-node-id': 'lockout-test',
      },
    })
    req.on('response', (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => {
        let code: string | undefined
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code
        } catch {
          code = undefined
        }
        resolve({ status: res.statusCode ?? 0, code })
      })
    })
    req.on('upgrade', (_res, socket) => {
      socket.destroy()
      resolve({ status: 101, code: undefined })
    })
    req.on('error', reject)
    req.end()
  })
}
