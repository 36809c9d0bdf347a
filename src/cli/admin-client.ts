import { readFile } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { TunnelError, errorCatalog, type ErrorCode } from '../errors/index.ts'

export interface AdminTarget {
  url: string
  token: string
  ca?: string | undefined
}

/**
 * Finds the admin API: --server/--token (or APPTUNNEL_SERVER/APPTUNNEL_TOKEN) first; on the
 * server's own host the data directory holds the URL, the token and the certificate to trust.
 */
export async function resolveAdminTarget(opts: { server?: string; token?: string; dataDir?: string; caFile?: string }): Promise<AdminTarget> {
  let url = opts.server ?? process.env.APPTUNNEL_SERVER
  let token = opts.token ?? process.env.APPTUNNEL_TOKEN
  let ca = opts.caFile === undefined ? undefined : await readFile(opts.caFile, 'utf8')
  const dataDir = opts.dataDir ?? process.env.APPTUNNEL_DATA_DIR ?? (url === undefined ? '.apptunnel' : undefined)
  if (dataDir !== undefined) {
    let info: { url?: string; certificateFile?: string } = {}
    try {
      info = JSON.parse(await readFile(join(dataDir, 'server.json'), 'utf8')) as typeof info
    } catch (err) {
      if (url === undefined) {
        throw new TunnelError(
          'TUN_ERR_CLI_USAGE',
          `no server to talk to: ${join(dataDir, 'server.json')} is missing (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}); start the server there or pass --server URL --token T`,
        )
      }
    }
    url ??= info.url
    if (ca === undefined && info.certificateFile !== undefined) ca = await readFile(info.certificateFile, 'utf8').catch(() => undefined)
    if (token === undefined) {
      token = (await readFile(join(dataDir, 'admin-token'), 'utf8').catch(() => '')).trim() || undefined
    }
  }
  if (url === undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'no server given: pass --server URL (or set APPTUNNEL_SERVER), or --data-dir on the server host')
  if (token === undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'no API token given: pass --token T (or set APPTUNNEL_TOKEN)')
  return { url, token, ca }
}

export async function callAdminApi(target: AdminTarget, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const url = new URL(path, target.url)
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        headers: {
          authorization: `Bearer ${target.token}`,
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length }),
        },
        ...(target.ca === undefined ? {} : { ca: target.ca }),
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: unknown = undefined
          if (text.length > 0) {
            try {
              json = JSON.parse(text)
            } catch {
              reject(new TunnelError('TUN_ERR_INTERNAL', `the server answered HTTP ${res.statusCode} with a body that is not JSON`))
              return
            }
          }
          const status = res.statusCode ?? 0
          if (status >= 400) {
            const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error
            const code = err?.code !== undefined && err.code in errorCatalog ? (err.code as ErrorCode) : 'TUN_ERR_INTERNAL'
            reject(new TunnelError(code, err?.message ?? `the server answered HTTP ${status}`))
            return
          }
          resolve({ status, json })
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (err: NodeJS.ErrnoException) => {
      const tls = err.code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME/.test(err.code)
      reject(
        new TunnelError(
          tls ? 'TUN_ERR_TLS_CERT_MISMATCH' : 'TUN_ERR_SERVER_UNREACHABLE',
          tls ? `the server certificate at ${url.host} is not trusted (${err.code}): pass --ca-file or --data-dir` : `cannot reach ${url.host}: ${err.code ?? err.message}`,
        ),
      )
    })
    req.end(payload)
  })
}
