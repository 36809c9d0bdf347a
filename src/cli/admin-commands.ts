import { join } from 'node:path'
import type { Command } from 'commander'
import { TunnelError } from '../errors/index.ts'
import { runCommand } from './run-command.ts'

/** The new password: the first line of standard input, so it never shows in `ps` or shell history. */
async function readPasswordFromStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('New password (then Enter; input is not hidden, prefer a pipe): ')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    if (Buffer.concat(chunks).includes(10)) break
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? ''
}

export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description('people who sign in to the admin consoles (cloud server, or on-prem instance)')
  admin
    .command('set-password')
    .description('set a console user\'s password from the first line of standard input (creates the user if needed; signs out its browsers)')
    .option('--user <name>', 'the user name', 'admin')
    .option('--database <db>', 'the database: the instance database (SQLite file or postgres:// URL), or the server\'s')
    .option('--data-dir <dir>', 'a tunnel server data directory whose default database (apptunnel.db) to use')
    .action((o: { user: string; database?: string; dataDir?: string }) =>
      runCommand(async () => {
        const target = o.database ?? (o.dataDir === undefined ? undefined : join(o.dataDir, 'apptunnel.db'))
        if (target === undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'which console? pass --database DB (instance or server database) or --data-dir DIR (server)')
        const password = await readPasswordFromStdin()
        const [{ openDatabase }, { setConsolePassword }] = await Promise.all([import('../store/index.ts'), import('../web/console-password.ts')])
        const database = await openDatabase(target)
        try {
          const { created, signedOut } = await setConsolePassword(database, o.user, password)
          process.stdout.write(created ? `Console user ${o.user} created.\n` : `Password of console user ${o.user} changed; ${signedOut} session${signedOut === 1 ? '' : 's'} signed out.\n`)
        } finally {
          await database.close()
        }
      }),
    )
}
