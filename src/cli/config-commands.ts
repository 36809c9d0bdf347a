import { Option, type Command } from 'commander'
import { CONFIG_SIDES, readConfigFile, type ConfigFile, type ConfigSide, type SourcedIssue } from '../config/config-file.ts'
import { formatIssue } from '../config/config-issues.ts'
import { EMPTY_LAYER, fileLayer, loadConfigFromSources, optionsOfSide, type ConfigLayer } from '../config/config-sources.ts'
import { TunnelError, isTunnelError } from '../errors/index.ts'
import { runCommand } from './run-command.ts'
import { printError } from './output.ts'

interface ConfigCommandOptions {
  config?: string
  side?: ConfigSide
  json?: boolean
}

/**
 * The side a flat file configures when --side is not given: the one whose own options (those the
 * other side does not have) it names more of; the server when it names none of either.
 */
export function detectSide(file: ConfigFile): { sides: ConfigSide[]; detected: boolean } {
  if (file.kind === 'sectioned') return { sides: CONFIG_SIDES.filter((s) => file.sections[s] !== undefined), detected: false }
  const names = Object.keys(file.options.values)
  const server = new Set(optionsOfSide('server').map((o) => o.name))
  const agent = new Set(optionsOfSide('agent').map((o) => o.name))
  const serverOnly = names.filter((n) => server.has(n) && !agent.has(n)).length
  const agentOnly = names.filter((n) => agent.has(n) && !server.has(n)).length
  return { sides: [agentOnly > serverOnly ? 'agent' : 'server'], detected: true }
}

/** A sectioned file's problems name the section too (agent.upstream), so one list can hold both sides. */
function inSection(file: ConfigFile | undefined, side: ConfigSide, issue: SourcedIssue): SourcedIssue {
  if (file?.kind !== 'sectioned' || !issue.source.startsWith(`${file.path}:`)) return issue
  return { ...issue, field: `${side}.${issue.field}` }
}

/** Validates one side as `apptunnel server|agent --config FILE` would, without starting anything. */
function verifySide(side: ConfigSide, file: ConfigFile | undefined): { issues: SourcedIssue[]; input: ConfigLayer | undefined } {
  try {
    const { input } = side === 'server' ? loadConfigFromSources('server', { file, env: process.env, flags: EMPTY_LAYER }) : loadConfigFromSources('agent', { file, env: process.env, flags: EMPTY_LAYER })
    return { issues: [], input }
  } catch (err) {
    if (!isTunnelError(err)) throw err
    if (err.code === 'TUN_ERR_CONFIG_INVALID' && Array.isArray(err.details['issues'])) return { issues: err.details['issues'] as SourcedIssue[], input: undefined }
    // The security key is decoded while loading; a malformed one is a problem of the `key` option.
    if (err.code === 'TUN_ERR_KEY_MALFORMED') {
      const source = fileLayer(side, file).sources['key'] ?? (process.env.APPTUNNEL_KEY !== undefined ? 'env APPTUNNEL_KEY' : 'not set')
      return { issues: [{ field: 'key', message: err.message, source }], input: undefined }
    }
    throw err
  }
}

async function loadFileOrIssues(path: string): Promise<{ file?: ConfigFile; issues: SourcedIssue[] }> {
  try {
    return { file: await readConfigFile(path), issues: [] }
  } catch (err) {
    if (isTunnelError(err) && Array.isArray(err.details['issues'])) return { issues: err.details['issues'] as SourcedIssue[] }
    throw err
  }
}

async function verify(o: ConfigCommandOptions): Promise<void> {
  const path = o.config!
  const loaded = await loadFileOrIssues(path)
  let sides: ConfigSide[] = []
  let detected = false
  const issues = [...loaded.issues]
  if (loaded.file !== undefined) {
    ;({ sides, detected } = o.side === undefined ? detectSide(loaded.file) : { sides: [o.side], detected: false })
    if (loaded.file.kind === 'sectioned' && o.side !== undefined && loaded.file.sections[o.side] === undefined) {
      issues.push({ field: o.side, message: `the file has no ${o.side}: section`, source: path })
    }
    if (sides.length === 0) issues.push({ field: 'config', message: 'the file has empty server: and agent: sections', source: path })
    for (const side of sides) issues.push(...verifySide(side, loaded.file).issues.map((i) => inSection(loaded.file, side, i)))
  }
  // The environment is read once per side; an unknown variable is one problem, not one per side.
  const lines = [...new Set(issues.map(formatIssue))]
  if (o.json === true) {
    process.stdout.write(JSON.stringify({ ok: lines.length === 0, file: path, sides, problems: issues.filter((i, n) => lines.indexOf(formatIssue(i)) === n) }) + '\n')
  } else if (lines.length === 0) {
    process.stdout.write(`OK: ${path}: valid ${sides.join(' and ')} configuration${detected ? ` (taken for ${sides[0]} from its options; --side chooses)` : ''}\n`)
  } else {
    process.stdout.write(lines.join('\n') + '\n')
  }
  if (lines.length > 0) {
    printError('TUN_ERR_CONFIG_INVALID', `${path}: ${lines.length} problem${lines.length === 1 ? '' : 's'}`)
    process.exitCode = 2
  }
}

const SECRET_OPTIONS = new Set(['key'])

/** Secrets never reach the output: the key entirely, a proxy's password inside its URL. */
function redacted(name: string, value: unknown): unknown {
  if (SECRET_OPTIONS.has(name) && value !== undefined) return '<redacted>'
  if (name === 'proxy' && typeof value === 'string') return value.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:<redacted>@')
  return value
}

async function show(o: ConfigCommandOptions): Promise<void> {
  const file = o.config === undefined ? undefined : await readConfigFile(o.config)
  let side = o.side
  if (side === undefined) {
    if (file === undefined) throw new TunnelError('TUN_ERR_CLI_USAGE', 'config show needs --side server|agent or --config FILE')
    const d = detectSide(file)
    if (d.sides.length !== 1) throw new TunnelError('TUN_ERR_CLI_USAGE', `${o.config} has both server: and agent: sections: choose one with --side`)
    side = d.sides[0]!
  }
  const { issues, input } = verifySide(side, file)
  if (input === undefined) {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', `invalid ${side} configuration, ${issues.length} problem${issues.length === 1 ? '' : 's'}:\n  ${issues.map(formatIssue).join('\n  ')}`)
  }
  // YAML that can be fed back as a file: each line says where its value came from.
  const out = [`# effective ${side} configuration: flags > environment > file > defaults`]
  for (const option of optionsOfSide(side)) {
    const given = option.name in input.values
    const value = redacted(option.name, given ? input.values[option.name] : option.defaultValue)
    if (value === undefined) out.push(`# ${option.name}: not set`)
    else out.push(`${option.name}: ${JSON.stringify(value)}  # ${given ? input.sources[option.name] : 'default'}`)
  }
  process.stdout.write(out.join('\n') + '\n')
}

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('check and show the configuration of apptunnel server and agent (docs/configuration.md)')
  const sideOption = () => new Option('--side <side>', 'which process the file configures (default: its server:/agent: section, else guessed from its options)').choices(CONFIG_SIDES)
  config
    .command('verify')
    .description('validate a configuration file (with the APPTUNNEL_* environment) without starting anything: exit 0, or one line per problem and exit 2')
    .requiredOption('--config <file>', 'YAML or JSON configuration file')
    .addOption(sideOption())
    .option('--json', 'print {ok, file, sides, problems: [{field, message, source}]}')
    .action((o: ConfigCommandOptions) => runCommand(() => verify(o)))
  config
    .command('show')
    .description('print the effective configuration (file, environment and defaults) with the source of each value; secrets redacted')
    .option('--config <file>', 'YAML or JSON configuration file')
    .addOption(sideOption())
    .action((o: ConfigCommandOptions) => runCommand(() => show(o)))
}
