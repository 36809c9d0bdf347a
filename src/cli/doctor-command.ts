import { readFile } from 'node:fs/promises'
import { Option, type Command } from 'commander'
import type { DoctorReport } from '../agent/doctor/run-doctor.ts'
import { TunnelError } from '../errors/index.ts'
import { proxyEnvironment } from '../transport/proxy-settings.ts'
import { definedOptions } from './defined-options.ts'
import { printJson, table } from './output.ts'
import { runCommand } from './run-command.ts'

/** The report as a person reads it: one row per check, the fix under each failure or warning. */
export function formatDoctorReport(report: DoctorReport): string {
  const rows = [['VERDICT', 'CHECK', 'DETAIL'], ...report.checks.map((c) => [c.verdict.toUpperCase(), `${c.number}. ${c.title}`, c.detail])]
  const lines = table(rows).trimEnd().split('\n')
  const indent = ' '.repeat(rows.reduce((w, r) => Math.max(w, r[0]!.length), 0) + 2)
  let out = `${lines[0]}\n`
  report.checks.forEach((c, i) => {
    out += `${lines[i + 1]}\n`
    if (c.fix !== '' && (c.verdict === 'fail' || c.verdict === 'warn')) out += `${indent}fix: ${c.fix}\n`
  })
  const failed = report.checks.filter((c) => c.verdict === 'fail').length
  const warned = report.checks.filter((c) => c.verdict === 'warn').length
  out += `\n${failed === 0 ? 'No check failed' : `${failed} check${failed === 1 ? '' : 's'} failed`}${warned === 0 ? '' : `, ${warned} warning${warned === 1 ? '' : 's'}`}.\n`
  return out
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('on-prem troubleshooting: check the upstream port, the way to the tunnel server, TLS, the key, the cluster nodes and the base URL, each with a verdict and a fix')
    .option('--key <key>', 'security key (or --key-file, or env APPTUNNEL_KEY); with --database it is read from there')
    .option('--key-file <file>', 'file holding the security key')
    .requiredOption('--upstream <host:port>', 'the plain-HTTP upstream port the agent forwards to, e.g. 127.0.0.1:8081')
    .option('--database <url>', 'instance database (SQLite file or postgres:// URL): the stored key and the cluster nodes')
    .option('--key-encryption-file <file>', 'key file the instance key is encrypted with in --database (env APPTUNNEL_KEY_ENCRYPTION_FILE)')
    .option('--ca-file <file>', 'PEM CA bundle to trust instead of the system CAs (as given to the agent)')
    .option('--proxy <url>', 'HTTP CONNECT proxy to the tunnel server, as for the agent (default: env https_proxy/HTTPS_PROXY; \'\' for none)')
    // Commander reads a --no-X flag as "X off"; this one is a list of its own (curl's NO_PROXY).
    .addOption(Object.assign(new Option('--no-proxy <list>', 'servers to dial directly despite --proxy (default: env no_proxy/NO_PROXY)'), { negate: false }))
    .option('--instance-url <url>', 'the base URL the app should report, e.g. https://jira.example.com (check 7 compares it)')
    .option('--timeout-ms <ms>', 'deadline of each network step (default 5000)', (v: string) => Number(v))
    .option('--json', 'machine-readable: {ok, checks: [{number, id, title, verdict, detail, fix, code?}]}')
    .action((o: Record<string, string | undefined> & { timeoutMs?: number; json?: boolean }) =>
      runCommand(async () => {
        let key = o.key ?? process.env.APPTUNNEL_KEY
        if (key === undefined && o.keyFile !== undefined) {
          key = await readFile(o.keyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new TunnelError('TUN_ERR_CLI_USAGE', `cannot read --key-file ${o.keyFile}: ${err.code ?? err.message}`)
          })
        }
        if (key === undefined && o.database === undefined) {
          throw new TunnelError('TUN_ERR_CLI_USAGE', 'which key? pass --key KEY, --key-file FILE or APPTUNNEL_KEY, or --database DB where apptunnel key add stored it')
        }
        const [{ loadDoctorConfig }, { runDoctor }] = await Promise.all([import('../agent/doctor/doctor-config.ts'), import('../agent/doctor/run-doctor.ts')])
        const env = proxyEnvironment(process.env)
        const config = loadDoctorConfig(
          definedOptions({
            key,
            upstream: o.upstream,
            database: o.database,
            keyEncryptionFile: o.keyEncryptionFile ?? process.env.APPTUNNEL_KEY_ENCRYPTION_FILE,
            caFile: o.caFile,
            proxy: o.proxy ?? env.proxy,
            noProxy: o.noProxy ?? env.noProxy,
            instanceUrl: o.instanceUrl,
            timeoutMs: o.timeoutMs,
          }) as Parameters<typeof loadDoctorConfig>[0],
        )
        const report = await runDoctor(config)
        if (o.json === true) printJson(report)
        else process.stdout.write(formatDoctorReport(report))
        if (!report.ok) process.exitCode = 1
      }),
    )
}
