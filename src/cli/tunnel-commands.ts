import type { Command } from 'commander'
import { callAdminApi, resolveAdminTarget } from './admin-client.ts'
import { runCommand } from './run-command.ts'
import { printJson, table } from './output.ts'

export interface TargetOptions {
  server?: string
  token?: string
  dataDir?: string
  caFile?: string
  json?: boolean
}

interface TunnelJson {
  id: string
  name: string
  status: string
  statusReason: string
  applicationLinkUrl: string
  instanceUrl: string | null
  sessions: number
  nodes: number
  createdAt: string
  key?: string
}

export function withTarget(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'admin API URL (env APPTUNNEL_SERVER)')
    .option('--token <token>', 'admin API token (env APPTUNNEL_TOKEN)')
    .option('--data-dir <dir>', "the server's data directory, on the server host (finds URL, token and certificate)")
    .option('--ca-file <file>', 'PEM certificate(s) to trust for the server')
    .option('--json', 'machine-readable output')
}

export function registerTunnelCommands(program: Command): void {
  const tunnel = program.command('tunnel').description('create, list, show and delete tunnels (admin API)')

  withTarget(tunnel.command('create').description('create a tunnel; prints its security key once'))
    .requiredOption('--name <name>', 'tunnel name, e.g. the on-prem instance it reaches')
    .option('--instance-url <url>', 'base URL of the on-prem instance')
    .action((opts: TargetOptions & { name: string; instanceUrl?: string }) =>
      runCommand(async () => {
        const target = await resolveAdminTarget(opts)
        const { json } = await callAdminApi(target, 'POST', '/api/v1/tunnels', { name: opts.name, instanceUrl: opts.instanceUrl })
        const t = json as TunnelJson
        if (opts.json === true) return printJson(t)
        process.stdout.write(
          `Created tunnel ${t.name} (${t.id}), status ${t.status}.\n\n` +
            `Security key (shown only now; add it to the on-prem instance):\n\n  ${t.key}\n\n` +
            `Application link URL: ${t.applicationLinkUrl}\n`,
        )
      }),
    )

  withTarget(tunnel.command('list').description('list the tunnels of the organization')).action((opts: TargetOptions) =>
    runCommand(async () => {
      const target = await resolveAdminTarget(opts)
      const { json } = await callAdminApi(target, 'GET', '/api/v1/tunnels')
      const list = (json as { tunnels: TunnelJson[] }).tunnels
      if (opts.json === true) return printJson(list)
      if (list.length === 0) {
        process.stdout.write('No tunnels yet. Create one with: apptunnel tunnel create --name NAME\n')
        return
      }
      const rows = [['ID', 'NAME', 'STATUS', 'SESSIONS', 'APPLICATION LINK URL']]
      for (const t of list) rows.push([t.id, t.name, t.status, String(t.sessions), t.applicationLinkUrl])
      process.stdout.write(table(rows))
    }),
  )

  withTarget(tunnel.command('show').description('show one tunnel').argument('<id>', 'tunnel id')).action((id: string, opts: TargetOptions) =>
    runCommand(async () => {
      const target = await resolveAdminTarget(opts)
      const { json } = await callAdminApi(target, 'GET', `/api/v1/tunnels/${encodeURIComponent(id)}`)
      const t = json as TunnelJson
      if (opts.json === true) return printJson(t)
      process.stdout.write(
        table([
          ['ID', t.id],
          ['Name', t.name],
          ['Status', `${t.status} (${t.statusReason})`],
          ['Application link URL', t.applicationLinkUrl],
          ['Instance URL', t.instanceUrl ?? '-'],
          ['Sessions / nodes', `${t.sessions} / ${t.nodes}`],
          ['Created', t.createdAt],
        ]),
      )
    }),
  )

  withTarget(tunnel.command('delete').description('delete a tunnel; its key stops working at once').argument('<id>', 'tunnel id')).action(
    (id: string, opts: TargetOptions) =>
      runCommand(async () => {
        const target = await resolveAdminTarget(opts)
        await callAdminApi(target, 'DELETE', `/api/v1/tunnels/${encodeURIComponent(id)}`)
        if (opts.json === true) return printJson({ id, deleted: true })
        process.stdout.write(`Deleted tunnel ${id}.\n`)
      }),
  )

  registerProductCommands(tunnel)
}

interface ProductJson {
  id: string
  name: string
  credential: boolean
  cidrs: string[]
  createdAt: string
  credentialValue?: string
}

/** `tunnel product add|list|remove`: the linked products allowed to call a tunnel. */
function registerProductCommands(tunnel: Command): void {
  const product = tunnel.command('product').description("linked products: the callers allowed to use a tunnel's application link URL")

  withTarget(
    product
      .command('add')
      .description('allow a caller: prints its credential once (send it as X-Apptunnel-Credential); from then on the tunnel refuses callers that match no product')
      .argument('<tunnel-id>', 'tunnel id'),
  )
    .requiredOption('--name <name>', 'the product, e.g. "Jira Cloud"')
    .option('--cidr <block>', 'allowed source address block, e.g. 203.0.113.0/24 (repeat for more)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--no-credential', 'no credential: the source address alone identifies it (needs --cidr)')
    .action((tunnelId: string, opts: TargetOptions & { name: string; cidr?: string[]; credential: boolean }) =>
      runCommand(async () => {
        const target = await resolveAdminTarget(opts)
        const { json } = await callAdminApi(target, 'POST', `/api/v1/tunnels/${encodeURIComponent(tunnelId)}/products`, {
          name: opts.name,
          credential: opts.credential,
          cidrs: opts.cidr ?? [],
        })
        const p = json as ProductJson
        if (opts.json === true) return printJson(p)
        let out = `Linked product ${p.name} (${p.id}) added to tunnel ${tunnelId}.\n`
        if (p.cidrs.length > 0) out += `Allowed sources: ${p.cidrs.join(', ')}\n`
        if (p.credentialValue !== undefined) out += `\nCredential (shown only now; the product sends it in the X-Apptunnel-Credential header):\n\n  ${p.credentialValue}\n`
        process.stdout.write(out)
      }),
    )

  withTarget(product.command('list').description("list a tunnel's linked products").argument('<tunnel-id>', 'tunnel id')).action((tunnelId: string, opts: TargetOptions) =>
    runCommand(async () => {
      const target = await resolveAdminTarget(opts)
      const { json } = await callAdminApi(target, 'GET', `/api/v1/tunnels/${encodeURIComponent(tunnelId)}/products`)
      const list = (json as { products: ProductJson[] }).products
      if (opts.json === true) return printJson(list)
      if (list.length === 0) {
        process.stdout.write('No linked products: every caller that reaches the ingress may use this tunnel. Add one with: apptunnel tunnel product add ID --name NAME\n')
        return
      }
      const rows = [['ID', 'NAME', 'CREDENTIAL', 'ALLOWED SOURCES', 'CREATED']]
      for (const p of list) rows.push([p.id, p.name, p.credential ? 'yes' : 'no', p.cidrs.length === 0 ? 'any' : p.cidrs.join(' '), p.createdAt])
      process.stdout.write(table(rows))
    }),
  )

  withTarget(
    product.command('remove').description('remove a linked product; its credential stops working at once').argument('<tunnel-id>', 'tunnel id').argument('<product-id>', 'product id'),
  ).action((tunnelId: string, productId: string, opts: TargetOptions) =>
    runCommand(async () => {
      const target = await resolveAdminTarget(opts)
      await callAdminApi(target, 'DELETE', `/api/v1/tunnels/${encodeURIComponent(tunnelId)}/products/${encodeURIComponent(productId)}`)
      if (opts.json === true) return printJson({ id: productId, removed: true })
      process.stdout.write(`Removed linked product ${productId} from tunnel ${tunnelId}.\n`)
    }),
  )
}
