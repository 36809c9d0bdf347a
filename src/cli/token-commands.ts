import type { Command } from 'commander'
import { callAdminApi, resolveAdminTarget } from './admin-client.ts'
import { printJson, table } from './output.ts'
import { runCommand } from './run-command.ts'
import { withTarget, type TargetOptions } from './tunnel-commands.ts'

/** An API token as the admin API shows it; `token` only in the answer to create. */
export interface TokenJson {
  id: string
  name: string
  createdAt: string
  lastUsedAt: string | null
  token?: string
}

/** One audit event as the admin API shows it. */
export interface AuditJson {
  id: number
  at: string
  actor: string
  action: string
  target: string | null
  sourceAddress: string | null
  details: Record<string, unknown> | null
}

/** `token list|create|revoke` and `audit`: who may use the admin API, and what they did with it. */
export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('admin API tokens: list, create, revoke')

  withTarget(token.command('list').description("list the organization's API tokens (never their values)")).action((opts: TargetOptions) =>
    runCommand(async () => {
      const { json } = await callAdminApi(await resolveAdminTarget(opts), 'GET', '/api/v1/tokens')
      const list = (json as { tokens: TokenJson[] }).tokens
      if (opts.json === true) return printJson(list)
      const rows = [['ID', 'NAME', 'CREATED', 'LAST USED']]
      for (const t of list) rows.push([t.id, t.name, t.createdAt, t.lastUsedAt ?? 'never'])
      process.stdout.write(table(rows))
    }),
  )

  withTarget(token.command('create').description('create an API token; prints it once').requiredOption('--name <name>', 'what the token is for, e.g. "ci"')).action(
    (opts: TargetOptions & { name: string }) =>
      runCommand(async () => {
        const { json } = await callAdminApi(await resolveAdminTarget(opts), 'POST', '/api/v1/tokens', { name: opts.name })
        const t = json as TokenJson
        if (opts.json === true) return printJson(t)
        process.stdout.write(`Created API token ${t.name} (${t.id}).\n\nToken (shown only now; pass it as --token or APPTUNNEL_TOKEN):\n\n  ${t.token}\n`)
      }),
  )

  withTarget(token.command('revoke').description('revoke an API token at once (not the last one)').argument('<id>', 'token id (see token list)')).action(
    (id: string, opts: TargetOptions) =>
      runCommand(async () => {
        await callAdminApi(await resolveAdminTarget(opts), 'DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`)
        if (opts.json === true) return printJson({ id, revoked: true })
        process.stdout.write(`Revoked API token ${id}.\n`)
      }),
  )

  withTarget(program.command('audit').description('the audit log: who did what to which tunnel, from where (newest first)'))
    .option('--limit <n>', 'how many events (1-1000, default 100)')
    .action((opts: TargetOptions & { limit?: string }) =>
      runCommand(async () => {
        const query = opts.limit === undefined ? '' : `?limit=${encodeURIComponent(opts.limit)}`
        const { json } = await callAdminApi(await resolveAdminTarget(opts), 'GET', `/api/v1/audit${query}`)
        const events = (json as { events: AuditJson[] }).events
        if (opts.json === true) return printJson(events)
        const rows = [['AT', 'ACTOR', 'ACTION', 'TARGET', 'FROM']]
        for (const e of events) rows.push([e.at, e.actor, e.action, e.target ?? '-', e.sourceAddress ?? '-'])
        process.stdout.write(table(rows))
      }),
    )
}
