import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { SecurityKey } from '../../protocol/index.ts'
import { proxyFor } from '../../transport/proxy-settings.ts'
import { CHECKS, fail, skipped, type CheckId, type CheckResult, type Finding } from './doctor-check.ts'
import type { DoctorConfig } from './doctor-config.ts'
import { readInstanceFacts, type InstanceFacts } from './instance-facts.ts'
import { checkKey } from './key-check.ts'
import { checkNodes } from './nodes-check.ts'
import { judgeBaseUrl } from './base-url-check.ts'
import { checkServerName, checkServerPort, type ServerRoute } from './server-reach-checks.ts'
import { checkServerTls } from './tls-check.ts'
import { hostPort, judgeUpstream } from './upstream-check.ts'
import { askUpstream } from './upstream-probe.ts'

export interface DoctorReport {
  /** false when any check failed */
  ok: boolean
  checks: CheckResult[]
}

/**
 * Runs the on-prem checks in order. A check that needs an earlier one which failed is skipped,
 * naming the first failure in the chain, so the report points at the cause rather than its echoes.
 */
export async function runDoctor(config: Readonly<DoctorConfig>, deps: { nodeId?: string } = {}): Promise<DoctorReport> {
  const ca = config.caFile === undefined ? undefined : await readCa(config.caFile)
  const results = new Map<CheckId, CheckResult>()
  const record = (id: CheckId, finding: Finding): CheckResult => {
    const meta = CHECKS.find((c) => c.id === id)!
    const result: CheckResult = { number: meta.number, id, title: meta.title, verdict: finding.verdict, detail: finding.detail, fix: finding.fix ?? '', ...(finding.code === undefined ? {} : { code: finding.code }) }
    results.set(id, result)
    return result
  }
  /** the check that blocks one depending on `on`, if any: the first failure up the chain */
  const blockedBy = new Map<CheckId, number>()
  const gate = (id: CheckId, on: CheckId): boolean => {
    const dep = results.get(on)!
    const root = dep.verdict === 'fail' ? dep.number : blockedBy.get(on)
    if (root === undefined) return true
    blockedBy.set(id, root)
    record(id, skipped(`because check ${root} failed`))
    return false
  }

  // 1. the upstream, with the Host a direct client would send
  const upstreamHost = hostPort(config.upstream)
  const firstAnswer = await askUpstream(config.upstream, upstreamHost, config.timeoutMs)
  record('upstream-http', judgeUpstream(config.upstream, upstreamHost, firstAnswer, config.timeoutMs))

  let facts: InstanceFacts | undefined
  let factsError: TunnelError | undefined
  if (config.database !== undefined) {
    try {
      facts = await readInstanceFacts(config.database, config.keyEncryptionFile)
    } catch (err) {
      if (!isTunnelError(err)) throw err
      factsError = err
    }
  }
  const key = keyFor(config, facts, factsError)

  // 2-5. the path to the server, each step needing the one before
  let applicationLinkUrl = facts?.applicationLinkUrl ?? undefined
  if ('error' in key) {
    for (const id of ['server-dns', 'server-tcp', 'server-tls'] as const) record(id, skipped('there is no usable security key to name the server (see check 5)'))
    record('key-valid', fail(key.error.message, keyFix(key.error), key.error.code))
  } else {
    const route = routeOf(key.key, config)
    record('server-dns', await checkServerName(route, config.timeoutMs))
    if (gate('server-tcp', 'server-dns')) record('server-tcp', await checkServerPort(route, config.timeoutMs))
    if (gate('server-tls', 'server-tcp')) record('server-tls', await checkServerTls(route, key.key, { ca, caFile: config.caFile }, config.timeoutMs))
    if (gate('key-valid', 'server-tls')) {
      const checked = await checkKey(key.key, { nodeId: deps.nodeId ?? doctorNodeId(), ca, proxy: config.proxy, timeoutMs: config.timeoutMs })
      record('key-valid', checked.finding)
      applicationLinkUrl = checked.welcome?.applicationLinkUrl ?? applicationLinkUrl
    }
  }

  // 6. the instance's nodes
  if (config.database === undefined) record('cluster-nodes', skipped('no --database: a single agent is not part of a cluster'))
  else if (facts === undefined) record('cluster-nodes', fail(`cannot read the instance database: ${factsError?.message ?? 'unknown error'}`, 'give the --database (and --key-encryption-file) the agent nodes use', factsError?.code))
  else record('cluster-nodes', checkNodes(facts))

  // 7. the app's base URL, asked the way callers through the tunnel ask
  if (gate('instance-url', 'upstream-http')) {
    const tunnelHost = applicationLinkUrl === undefined ? undefined : new URL(applicationLinkUrl).host
    const hostHeader = tunnelHost ?? upstreamHost
    const answer = hostHeader === upstreamHost ? firstAnswer : await askUpstream(config.upstream, hostHeader, config.timeoutMs)
    if (answer.kind === 'http') record('instance-url', judgeBaseUrl(answer, hostHeader, config.instanceOrigin))
    else {
      const seen = judgeUpstream(config.upstream, hostHeader, answer, config.timeoutMs)
      record('instance-url', fail(`asked with the tunnel's Host ${hostHeader}: ${seen.detail}`, seen.fix ?? '', seen.code))
    }
  }

  const checks = CHECKS.map((c) => results.get(c.id)!)
  return { ok: checks.every((c) => c.verdict !== 'fail'), checks }
}

function keyFor(config: Readonly<DoctorConfig>, facts: InstanceFacts | undefined, factsError: TunnelError | undefined): { key: SecurityKey } | { error: TunnelError } {
  if (config.key !== undefined) return { key: config.key }
  if (facts === undefined) return { error: factsError ?? new TunnelError('TUN_ERR_INSTANCE_NO_KEY', 'no security key given') }
  return facts.key.ok ? { key: facts.key.key } : { error: facts.key.error }
}

function keyFix(err: TunnelError): string {
  switch (err.code) {
    case 'TUN_ERR_INSTANCE_NO_KEY':
      return 'add the key for the instance: apptunnel key add KEY --database DB (or give --key)'
    case 'TUN_ERR_KEY_SEALED':
      return 'give the --key-encryption-file the key was added with (the same file every node has)'
    default:
      return 'give the --database the agent nodes use, or the key itself with --key'
  }
}

function routeOf(key: SecurityKey, config: Readonly<DoctorConfig>): ServerRoute {
  const url = new URL(key.serverUrl)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const port = url.port === '' ? 443 : Number(url.port)
  return { host, port, authority: `${host.includes(':') ? `[${host}]` : host}:${port}`, proxy: proxyFor(config.proxy, host, port) }
}

/** The server records the session under this node id: plainly the doctor, and from which host. */
function doctorNodeId(): string {
  return `doctor-${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(0, 64)
}

async function readCa(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', `caFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
}
