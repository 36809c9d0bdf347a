import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Command } from 'commander'
import { optionsOfSide } from '../config/config-sources.ts'
import type { ConfigSide } from '../config/config-file.ts'
import { registerAgentCommand } from './agent-start.ts'
import { configFlagValues, flagOf, givenOnCommandLine, optionFlags } from './config-flags.ts'
import { registerServerCommand } from './server-start.ts'

// An option is named once, in its zod schema: its flag is derived from the name (flagOf), and the
// value a flag carries reaches the option through that derivation, with no mapping kept by hand.

/** Flags of the commands that set no config option themselves. */
const COMMAND_ONLY: Record<ConfigSide, string[]> = { server: ['--config'], agent: ['--config', '--key-file'] }

function command(side: ConfigSide): Command {
  const program = new Command().exitOverride()
  if (side === 'server') registerServerCommand(program)
  else registerAgentCommand(program)
  const cmd = program.commands.find((c) => c.name() === side)!
  // Parsed, not run.
  cmd.action(() => {})
  return cmd
}

for (const side of ['server', 'agent'] as const) {
  test(`${side}: every flag sets the config option it is named after, apart from ${COMMAND_ONLY[side].join(' and ')}`, () => {
    const cmd = command(side)
    const names = optionsOfSide(side).map((o) => o.name)
    const mapped = optionFlags(cmd, names)
    const unmapped = cmd.options.filter((o) => !mapped.has(o)).map((o) => o.long)
    assert.deepEqual(unmapped, COMMAND_ONLY[side], 'a flag that names no option of the schema (misspelt, or the option was renamed)')
    for (const [opt, name] of mapped) assert.equal(opt.long, flagOf(name))
  })

  test(`${side}: a value given for every flag reaches its option, numbers as numbers, and nothing else is set`, async () => {
    const cmd = command(side)
    const infos = optionsOfSide(side)
    const mapped = optionFlags(cmd, infos.map((o) => o.name))
    const argv: string[] = []
    const expected: Record<string, unknown> = {}
    for (const [opt, name] of mapped) {
      const info = infos.find((o) => o.name === name)!
      if (opt.required || opt.optional) {
        const value = info.kind === 'number' ? '1234' : `value-of-${name}`
        argv.push(opt.long!, value)
        expected[name] = info.kind === 'number' ? 1234 : value
      } else {
        argv.push(opt.long!)
        expected[name] = true
      }
    }
    await cmd.parent!.parseAsync([side, ...argv], { from: 'user' })
    const values = configFlagValues(cmd, givenOnCommandLine(cmd, cmd.opts()), infos.map((o) => o.name))
    assert.deepEqual(values, expected)
  })

  test(`${side}: defaults commander shows in --help are not taken for flags a person gave`, async () => {
    const cmd = command(side)
    await cmd.parent!.parseAsync([side], { from: 'user' })
    assert.deepEqual(configFlagValues(cmd, givenOnCommandLine(cmd, cmd.opts()), optionsOfSide(side).map((o) => o.name)), {})
  })
}
