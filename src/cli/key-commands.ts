import { open } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import type { Command } from 'commander'
import { TunnelError } from '../errors/index.ts'
import type { InstanceAdmin } from '../agent/instance/instance-admin.ts'
import type { InstanceStatusView } from '../agent/instance/instance-status.ts'
import { printJson, table } from './output.ts'
import { runCommand } from './run-command.ts'

interface InstanceDatabaseOptions {
  database?: string
  json?: boolean
  keyEncryptionFile?: string
}

/** Opens the instance database named by --database (or APPTUNNEL_DATABASE), runs body, closes it. */
async function withInstance<T>(o: InstanceDatabaseOptions, body: (admin: InstanceAdmin) => Promise<T>): Promise<T> {
  const target = o.database ?? process.env.APPTUNNEL_DATABASE
  if (target === undefined) {
    throw new TunnelError('TUN_ERR_CLI_USAGE', 'which instance? pass --database DB (the SQLite file or postgres:// URL the agent nodes share)')
  }
  const [{ openDatabase }, { InstanceAdmin }, { KeySealer }, { TerminalProgress, describeMigration }] = await Promise.all([
    import('../store/index.ts'),
    import('../agent/instance/instance-admin.ts'),
    import('../agent/instance/key-sealer.ts'),
    import('../observability/index.ts'),
  ])
  const keyFile = o.keyEncryptionFile ?? process.env.APPTUNNEL_KEY_ENCRYPTION_FILE
  const sealer = keyFile === undefined ? undefined : await KeySealer.fromFile(keyFile)
  // `key add` is often the first command to reach a new instance database: it creates the schema.
  const migrating = new TerminalProgress({ out: process.stderr })
  const database = await openDatabase(target, { onMigration: (step) => migrating.update(describeMigration(step)) }).finally(() => migrating.done())
  try {
    return await body(new InstanceAdmin(database, { sealer }))
  } finally {
    await database.close()
  }
}

function whoAmI(): string {
  let user = 'unknown user'
  try {
    user = userInfo().username
  } catch {
    // no passwd entry (containers): the host is still worth recording
  }
  return `${user}@${hostname()} (cli)`
}

/** The `key status --json` shape (the automation contract). */
function statusJson(v: InstanceStatusView): unknown {
  return {
    status: v.status,
    reason: v.reason,
    hint: v.hint,
    tunnel: v.tunnel,
    nodes: v.nodes.map((n) => ({
      id: n.id,
      address: n.address,
      status: n.status,
      reason: n.reason,
      online: n.online,
      sessions: n.sessions,
      sessionsWanted: n.sessionsWanted,
      lastHeartbeat: n.lastHeartbeat,
      version: n.version,
    })),
  }
}

/** The reference document's table (Name | Connected to | Status | Actions), then one row per node. */
export function formatInstanceStatus(v: InstanceStatusView, now = Date.now()): string {
  let out = ''
  if (v.tunnel === null) {
    out += 'No security key has been added to this instance.\n'
    out += 'Create a tunnel in the cloud console, then: apptunnel key add KEY --database DB\n'
  } else {
    out += table([
      ['NAME', 'CONNECTED TO', 'STATUS', 'ACTIONS'],
      [v.tunnel.name ?? `(tunnel ${v.tunnel.id})`, v.tunnel.connectedTo ?? '-', v.status ?? '-', 'key remove'],
    ])
    out += `\n${v.status}: ${v.reason}\n${v.hint}\n`
    if (v.tunnel.applicationLinkUrl !== null) out += `Application link URL: ${v.tunnel.applicationLinkUrl}\n`
    out += `Tunnel server: ${v.tunnel.serverUrl} (key added ${v.tunnel.addedAt})\n`
  }
  out += '\n'
  if (v.nodes.length === 0) return out + 'No agent node has registered yet: start apptunnel agent --database DB on each node.\n'
  const rows = [['NODE', 'ADDRESS', 'STATUS', 'SESSIONS', 'LAST HEARTBEAT', 'REASON']]
  for (const n of v.nodes) {
    const age = Math.max(0, Math.round((now - Date.parse(n.lastHeartbeat)) / 1000))
    rows.push([n.id, n.address, n.status ?? '-', `${n.sessions}/${n.sessionsWanted}`, `${age} s ago`, n.reason])
  }
  return out + table(rows)
}

/** a security key is under 1 KiB; anything much larger is not one, and is not read whole */
const MAX_KEY_INPUT_BYTES = 16 * 1024

/** The key from exactly one of: the argument, --key-file FILE, or standard input ("-"). */
async function keyText(argument: string | undefined, keyFile: string | undefined): Promise<string> {
  if (argument !== undefined && keyFile !== undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'give the security key once: as the argument or with --key-file, not both')
  const source = keyFile ?? argument
  if (source === undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'no security key given: apptunnel key add KEY, --key-file FILE, or - to read it from standard input')
  if (source !== '-' && keyFile === undefined) return source
  const text = source === '-' ? await readStdin() : await readKeyFile(source)
  if (text.trim() === '') throw new TunnelError('TUN_ERR_CLI_USAGE', `no security key in ${source === '-' ? 'standard input' : source}: it is empty`)
  return text.trim()
}

async function readKeyFile(file: string): Promise<string> {
  const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new TunnelError('TUN_ERR_CLI_USAGE', `cannot read --key-file ${file}: ${err.code ?? err.message}`)
  })
  try {
    const buffer = Buffer.alloc(MAX_KEY_INPUT_BYTES + 1)
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
    if (bytesRead > MAX_KEY_INPUT_BYTES) throw new TunnelError('TUN_ERR_CLI_USAGE', `--key-file ${file} is larger than ${MAX_KEY_INPUT_BYTES} bytes: it does not hold a security key`)
    return buffer.subarray(0, bytesRead).toString('utf8')
  } finally {
    await handle.close()
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_KEY_INPUT_BYTES) throw new TunnelError('TUN_ERR_CLI_USAGE', `standard input is larger than ${MAX_KEY_INPUT_BYTES} bytes: it does not hold a security key`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export function registerKeyCommands(program: Command): void {
  const key = program.command('key').description('the security key of this on-prem instance (one tunnel per instance), stored in the database its agent nodes share')

  key
    .command('add')
    .description('store the security key for the whole instance: every agent node picks it up within seconds and connects')
    .argument('[key]', 'the security key created in the cloud console; "-" reads it from standard input (keeps it out of the shell history and the process list)')
    .option('--key-file <file>', 'read the security key from this file ("-": standard input)')
    .option('--database <db>', 'the instance database: SQLite file or postgres:// URL (or env APPTUNNEL_DATABASE)')
    .option('--key-encryption-file <file>', 'store the key encrypted with this key file (give the nodes the same file; env APPTUNNEL_KEY_ENCRYPTION_FILE)')
    .option('--json', 'machine-readable output')
    .action((given: string | undefined, o: InstanceDatabaseOptions & { keyFile?: string }) =>
      runCommand(async () => {
        const text = await keyText(given, o.keyFile)
        await withInstance(o, async (admin) => {
          const { key: stored, added } = await admin.addKey(text, whoAmI())
          if (o.json === true) return printJson({ added, tunnel: { id: stored.tunnelId, serverUrl: stored.serverUrl, addedAt: stored.addedAt } })
          process.stdout.write(
            added
              ? `Security key added for tunnel ${stored.tunnelId} (server ${stored.serverUrl}). The agent nodes connect within seconds: apptunnel key status --database DB\n`
              : `This key is already the instance's key (tunnel ${stored.tunnelId}, added ${stored.addedAt}); nothing changed.\n`,
          )
        })
      }),
    )

  key
    .command('new-encryption-file')
    .description('write a new key file (32 random bytes, owner-only) to encrypt the instance key at rest with --key-encryption-file')
    .argument('<file>', 'where to write it; an existing file is never overwritten')
    .action((file: string) =>
      runCommand(async () => {
        const { KeySealer } = await import('../agent/instance/key-sealer.ts')
        const sealer = await KeySealer.writeNewFile(file)
        process.stdout.write(`Wrote key file ${file} (key id ${sealer.kid}). Copy it to every node, then: apptunnel key add KEY --database DB --key-encryption-file ${file}\n`)
      }),
    )

  key
    .command('remove')
    .description("remove the instance's security key: every agent node disconnects")
    .option('--database <db>', 'the instance database: SQLite file or postgres:// URL (or env APPTUNNEL_DATABASE)')
    .option('--json', 'machine-readable output')
    .action((o: InstanceDatabaseOptions) =>
      runCommand(() =>
        withInstance(o, async (admin) => {
          const removed = await admin.removeKey()
          if (o.json === true) return printJson({ removed: { tunnelId: removed.tunnelId, name: removed.tunnelName } })
          process.stdout.write(`Security key of tunnel ${removed.tunnelId}${removed.tunnelName === null ? '' : ` "${removed.tunnelName}"`} removed; the agent nodes disconnect within seconds.\n`)
        }),
      ),
    )

  key
    .command('status')
    .description('the tunnel of this instance, its status with the reason, and every agent node')
    .option('--database <db>', 'the instance database: SQLite file or postgres:// URL (or env APPTUNNEL_DATABASE)')
    .option('--json', 'machine-readable: {status, reason, tunnel: {id, name, connectedTo, …}, nodes: [{id, status, reason, sessions, lastHeartbeat, …}]}')
    .action((o: InstanceDatabaseOptions) =>
      runCommand(() =>
        withInstance(o, async (admin) => {
          const view = await admin.status()
          if (o.json === true) printJson(statusJson(view))
          else process.stdout.write(formatInstanceStatus(view))
        }),
      ),
    )
}

/** `cluster node list|remove`: the agent nodes registered in an instance database. */
export function registerClusterNodeCommands(cluster: Command): void {
  const node = cluster.command('node').description('agent nodes of this on-prem instance (rows in its database)')

  node
    .command('list')
    .description('every registered node with its status, sessions and last heartbeat')
    .option('--database <db>', 'the instance database: SQLite file or postgres:// URL (or env APPTUNNEL_DATABASE)')
    .option('--json', 'machine-readable output')
    .action((o: InstanceDatabaseOptions) =>
      runCommand(() =>
        withInstance(o, async (admin) => {
          const view = await admin.status()
          if (o.json === true) return printJson((statusJson(view) as { nodes: unknown }).nodes)
          if (view.nodes.length === 0) return void process.stdout.write('No agent node has registered yet.\n')
          const now = Date.now()
          const rows = [['NODE', 'ADDRESS', 'STATE', 'STATUS', 'SESSIONS', 'LAST HEARTBEAT', 'VERSION']]
          for (const n of view.nodes) {
            const age = Math.max(0, Math.round((now - Date.parse(n.lastHeartbeat)) / 1000))
            rows.push([n.id, n.address, n.online ? 'running' : 'down', n.status ?? '-', `${n.sessions}/${n.sessionsWanted}`, `${age} s ago`, n.version])
          }
          process.stdout.write(table(rows))
        }),
      ),
    )

  node
    .command('remove')
    .description('retire a node that is gone for good: it no longer counts towards the instance status')
    .argument('<id>', 'the node id (see cluster node list)')
    .option('--database <db>', 'the instance database: SQLite file or postgres:// URL (or env APPTUNNEL_DATABASE)')
    .option('--force', 'remove it even though its last heartbeat is recent')
    .action((id: string, o: InstanceDatabaseOptions & { force?: boolean }) =>
      runCommand(() =>
        withInstance(o, async (admin) => {
          await admin.removeNode(id, { force: o.force === true })
          process.stdout.write(`Node ${id} removed from the instance.\n`)
        }),
      ),
    )
}
