/** Pretty JSON on stdout: the `--json` output of every command. */
export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n')
}

/** A plain text table, columns padded to their widest cell; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n'
}

/**
 * Whether the command line asks for machine-readable output. Read from the words themselves, not
 * from a parsed option, so that errors commander raises while parsing (an unknown option, a
 * missing argument) come out as JSON too: a script that passed --json parses every outcome.
 */
export function jsonRequested(argv: readonly string[] = process.argv.slice(2)): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/**
 * One error on stderr: `apptunnel: message [CODE]` and, for a person, an optional hint line; with
 * --json one line `{"error":{"code","message"}}` instead (the admin API's error shape).
 */
export function printError(code: string, message: string, options: { hint?: string; showCode?: boolean } = {}): void {
  if (jsonRequested()) {
    process.stderr.write(JSON.stringify({ error: { code, message } }) + '\n')
    return
  }
  process.stderr.write(`apptunnel: ${message}${options.showCode === false ? '' : ` [${code}]`}\n${options.hint === undefined ? '' : `${options.hint}\n`}`)
}
