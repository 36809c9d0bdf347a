import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Command } from 'commander'
import { optionsOfSide } from '../config/config-sources.ts'
import type { ConfigSide } from '../config/config-file.ts'
import { registerAgentCommand } from './agent-start.ts'
import { configFlagValues, flagOf, givenOnCommandLine, optionFlags } from './config-flags.ts'
import { registerServerCommand } from './server-start.ts'

// An option is named once, in its zod schema, and described once, in the table beside it: its flag
// is generated from both (name by flagOf, value name, parser, help text), and the value a flag
// carries reaches the option through the same derivation, with no mapping kept by hand.

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

  test(`${side}: each option with a flag has exactly one, each marked flag: false has none, and every generated flag is an option's`, () => {
    const cmd = command(side)
    const options = optionsOfSide(side)
    for (const o of options) {
      const found = cmd.options.filter((opt) => opt.long === flagOf(o.name))
      assert.equal(found.length, o.flag ? 1 : 0, `${o.name}: ${found.length} flags ${flagOf(o.name)}`)
    }
    const withFlag = new Set(options.filter((o) => o.flag).map((o) => flagOf(o.name)))
    const generated = cmd.options.map((opt) => opt.long!).filter((long) => !COMMAND_ONLY[side].includes(long))
    assert.deepEqual(generated.filter((long) => !withFlag.has(long)), [])
    assert.equal(generated.length, withFlag.size)
  })

  test(`${side}: a flag takes a value unless its option is a boolean, <ms> for durations, <n> for other numbers; numbers are parsed`, () => {
    const cmd = command(side)
    for (const [opt, name] of optionFlags(cmd, optionsOfSide(side).map((o) => o.name))) {
      const o = optionsOfSide(side).find((x) => x.name === name)!
      assert.equal(opt.required, o.kind !== 'boolean', `${opt.long} takes a value`)
      assert.equal(opt.negate, false, `${opt.long} is no negation`)
      if (o.kind === 'number') {
        assert.match(opt.flags, o.unit === 'ms' ? / <ms>$/ : / <n>$/)
        assert.equal(opt.parseArg?.('42', undefined), 42)
      } else assert.equal(opt.parseArg, undefined, `${opt.long} keeps its text`)
    }
  })

  test(`${side}: --help shows each option's description, other options by their flags, and the schema's default; commander holds no default`, () => {
    const cmd = command(side)
    const options = optionsOfSide(side)
    for (const [opt, name] of optionFlags(cmd, options.map((o) => o.name))) {
      const o = options.find((x) => x.name === name)!
      assert.equal(opt.defaultValue, undefined, `${opt.long} has a commander default`)
      assert.ok(!opt.description.includes('`'), `${opt.long}: Markdown left in ${opt.description}`)
      if (o.defaultValue !== undefined && o.defaultValue !== '' && o.defaultValue !== false) assert.ok(opt.description.endsWith(` (default: ${JSON.stringify(o.defaultValue)})`), opt.description)
    }
    const help = cmd.helpInformation().replace(/\s+/g, ' ')
    if (side === 'server') {
      assert.match(help, /--listen <host:port> HTTPS listener of the admin API .* \(default: "127\.0\.0\.1:8443"\)/)
      assert.match(help, /--tls-cert <file> PEM certificate of the HTTPS listener \(with --tls-key\)/)
    } else {
      assert.match(help, /--sessions <n> Sessions this node keeps .* \(default: 2\)/)
      assert.match(help, /--console-listen <host:port> .* Needs --database and --data-dir\./)
    }
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
