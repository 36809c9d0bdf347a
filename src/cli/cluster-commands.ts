import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { TunnelError, isTunnelError } from '../errors/index.ts'
import { silentLogger } from '../observability/index.ts'
import { runCommand } from './run-command.ts'
import { printJson, table } from './output.ts'
import { registerClusterNodeCommands } from './key-commands.ts'

interface DatabaseOptions {
  dataDir?: string
  database?: string
  json?: boolean
}

function int(v: string): number {
  return Number(v)
}

/** --database, else apptunnel.db in --data-dir (or APPTUNNEL_DATA_DIR): where a server or agent keeps it. */
function databaseTarget(o: DatabaseOptions): string | undefined {
  if (o.database !== undefined) return o.database
  const dataDir = o.dataDir ?? process.env.APPTUNNEL_DATA_DIR
  return dataDir === undefined ? undefined : join(dataDir, 'apptunnel.db')
}

/** The cluster key as a key file holds it: the stored value, one trailing newline allowed. */
async function readKeyFile(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new TunnelError('TUN_ERR_CLI_USAGE', `cannot read --key-file ${file}: ${err.code ?? err.message}`)
  })
  const value = text.replace(/\r?\n$/, '')
  if (value === '') throw new TunnelError('TUN_ERR_CLI_USAGE', `--key-file ${file} is empty: it must hold the value of the cluster.auth.secret.key row`)
  return value
}

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('cluster bus of server replicas or on-prem agent nodes: status and authentication probe')

  cluster
    .command('probe')
    .description('authenticate to one cluster node as a peer would (client side of the handshake), then disconnect')
    .argument('<host:port>', "the node's cluster bus address (its --cluster-advertise or --cluster-listen)")
    .option('--data-dir <dir>', 'data directory holding apptunnel.db (the cluster key is read from it)')
    .option('--database <url>', 'the shared database (SQLite file or postgres:// URL) holding the cluster key')
    .option('--key-file <file>', 'file holding the cluster key (the value of the cluster.auth.secret.key row) instead of the database')
    .option('--timeout-ms <ms>', 'give up after this long', int, 10_000)
    .option('--json', 'print { ok, timeToAuthMs, error: { code, message } } and more')
    .action((address: string, o: DatabaseOptions & { keyFile?: string; timeoutMs: number }) =>
      runCommand(async () => {
        if (!(Number.isInteger(o.timeoutMs) && o.timeoutMs > 0)) throw new TunnelError('TUN_ERR_CLI_USAGE', `--timeout-ms must be a positive integer, not ${String(o.timeoutMs)}`)
        const target = databaseTarget(o)
        if (o.keyFile === undefined && target === undefined) {
          throw new TunnelError('TUN_ERR_CLI_USAGE', 'where is the cluster key? pass --data-dir DIR or --database URL (or --key-file FILE)')
        }
        const [{ probeClusterNode, ClusterKeySupplier, KeyRing }, { openDatabase, SecurityPropertyRepository }] = await Promise.all([
          import('../cluster/index.ts'),
          import('../store/index.ts'),
        ])
        // Usage errors (an address that is not HOST:PORT) stay one-line errors with exit code 2.
        const { splitAddress } = await import('../cluster/bus/tcp-dial.ts')
        splitAddress(address)
        let result
        try {
          if (o.keyFile !== undefined) {
            const ring = new KeyRing({ graceMs: 0 })
            ring.adopt(await readKeyFile(o.keyFile))
            result = await probeClusterNode(address, { keys: ring, timeoutMs: o.timeoutMs })
          } else {
            const database = await openDatabase(target!)
            try {
              // Read-only: a probe never generates the key, and never polls.
              const keys = new ClusterKeySupplier(
                { disabledAtStart: false, pollIntervalMs: 60_000, graceMs: 0, warnIntervalMs: 60_000, generate: false },
                { properties: new SecurityPropertyRepository(database), log: silentLogger() },
              )
              await keys.refresh()
              result = await probeClusterNode(address, { keys, timeoutMs: o.timeoutMs })
              await keys.close()
            } finally {
              await database.close()
            }
          }
        } catch (err) {
          if (!isTunnelError(err) || o.json !== true || err.code === 'TUN_ERR_CLI_USAGE') throw err
          result = { ok: false, address, peerId: null, kid: null, timeToAuthMs: null, error: { code: err.code, message: err.message } }
        }
        if (o.json === true) printJson(result)
        if (result.ok) {
          if (o.json !== true) process.stdout.write(`authenticated to cluster node ${result.peerId} at ${address} in ${result.timeToAuthMs} ms (key id ${result.kid})\n`)
          return
        }
        if (o.json === true) {
          process.exitCode = 1
          return
        }
        throw new TunnelError(result.error!.code, `probe of ${address} failed: ${result.error!.message}`)
      }),
    )

  cluster
    .command('status')
    .description('list the cluster nodes in the shared database: address, last heartbeat, bus links, key')
    .option('--data-dir <dir>', 'data directory holding apptunnel.db')
    .option('--database <url>', 'the shared database (SQLite file or postgres:// URL)')
    .option('--kind <kind>', 'only server replicas (server) or on-prem agent nodes (agent)')
    .option('--json', 'machine-readable output, with each node\'s authentication statistics')
    .action((o: DatabaseOptions & { kind?: string }) =>
      runCommand(async () => {
        const target = databaseTarget(o)
        if (target === undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'which database? pass --data-dir DIR or --database URL')
        if (o.kind !== undefined && o.kind !== 'server' && o.kind !== 'agent') throw new TunnelError('TUN_ERR_CLI_USAGE', `--kind must be server or agent, not "${o.kind}"`)
        const [{ CLUSTER_KEY_PROPERTY }, { deriveClusterKey }, { openDatabase, ClusterNodeRepository, SecurityPropertyRepository }] = await Promise.all([
          import('../cluster/index.ts'),
          import('../cluster/auth/auth-transcript.ts'),
          import('../store/index.ts'),
        ])
        const database = await openDatabase(target)
        try {
          const [nodes, secret] = await Promise.all([
            new ClusterNodeRepository(database).list(o.kind as 'server' | 'agent' | undefined),
            new SecurityPropertyRepository(database).get(CLUSTER_KEY_PROPERTY),
          ])
          const now = Date.now()
          const key =
            secret === undefined ? { state: 'missing', kid: null } : secret === '' ? { state: 'disabled (empty value)', kid: null } : { state: 'enabled', kid: deriveClusterKey(secret).kidHex }
          const view = nodes.map((n) => {
            const status = (n.status ?? {}) as { heartbeatIntervalMs?: number; key?: { mode?: string; kid?: string | null }; links?: Array<{ peerId: string; direction: string; kid: string | null }> }
            const heartbeatAgeMs = now - Date.parse(n.heartbeatAt)
            return { ...n, heartbeatAgeMs, live: heartbeatAgeMs <= 3 * (status.heartbeatIntervalMs ?? 5000), status }
          })
          if (o.json === true) return printJson({ key, nodes: view })
          process.stdout.write(`cluster key: ${key.state}${key.kid === null ? '' : ` (key id ${key.kid})`}\n`)
          if (view.length === 0) {
            process.stdout.write('No cluster nodes registered. Start a server or agent with --cluster-listen HOST:PORT.\n')
            return
          }
          const rows = [['NODE', 'KIND', 'ADDRESS', 'STATE', 'LAST HEARTBEAT', 'KEY ID', 'BUS LINKS', 'AGENT URL']]
          for (const n of view) {
            const links = (n.status.links ?? []).map((l) => `${l.direction === 'outbound' ? '→' : '←'}${l.peerId}${l.kid === null ? ' (unauthenticated)' : ''}`).join(' ')
            rows.push([n.id, n.kind, n.address, n.live ? 'live' : 'silent', `${n.heartbeatAt} (${Math.round(n.heartbeatAgeMs / 1000)} s ago)`, n.status.key?.kid ?? n.status.key?.mode ?? '-', links || '-', n.agentEndpoint?.url ?? '-'])
          }
          process.stdout.write(table(rows))
        } finally {
          await database.close()
        }
      }),
    )

  registerClusterNodeCommands(cluster)
}
