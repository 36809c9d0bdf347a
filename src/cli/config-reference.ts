import { Command } from 'commander'
import { CONFIG_SIDES, type ConfigSide } from '../config/config-file.ts'
import { optionsOfSide } from '../config/config-sources.ts'
import type { OptionInfo } from '../config/config-options.ts'
import { registerAgentCommand } from './agent-start.ts'
import { flagOf } from './config-flags.ts'
import { registerServerCommand } from './server-start.ts'

/**
 * The option tables of docs/configuration.md, computed from the zod schemas, the description
 * tables beside them and the commands' flags, so a test can tell when the document is out of date.
 */

const BEGIN = (side: ConfigSide) => `<!-- ${side}-options:begin (generated: node --import tsx scripts/update-config-doc.ts) -->`
const END = (side: ConfigSide) => `<!-- ${side}-options:end -->`
const HEADER = '| Option | Type | Default | Unit | Environment | Flag | Description |\n| --- | --- | --- | --- | --- | --- | --- |'

function flagsOf(side: ConfigSide): Set<string> {
  const program = new Command()
  if (side === 'server') registerServerCommand(program)
  else registerAgentCommand(program)
  const command = program.commands.find((c) => c.name() === side)!
  return new Set(command.options.map((o) => o.long).filter((l): l is string => l !== undefined))
}

function typeOf(o: OptionInfo): string {
  switch (o.kind) {
    case 'boolean':
      return 'boolean'
    case 'enum':
      return o.values!.map((v) => `\`${v}\``).join(' \\| ')
    case 'number':
      return `${o.integer ? 'integer' : 'number'}${o.min !== undefined && o.max !== undefined ? ` ${o.min}–${o.max}` : ''}`
    default:
      return 'string'
  }
}

function defaultOf(o: OptionInfo): string {
  if (o.defaultValue !== undefined) return o.defaultValue === '' ? '`""`' : `\`${String(o.defaultValue)}\``
  return o.required ? 'required' : '—'
}

export function optionTable(side: ConfigSide): string {
  const flags = flagsOf(side)
  const rows = optionsOfSide(side).map((o) => {
    const flag = flags.has(flagOf(o.name)) ? `\`${flagOf(o.name)}\`` : '—'
    return `| \`${o.name}\` | ${typeOf(o)} | ${defaultOf(o)} | ${o.unit ?? ''} | \`${o.env}\` | ${flag} | ${o.description} |`
  })
  return `${BEGIN(side)}\n${HEADER}\n${rows.join('\n')}\n${END(side)}`
}

/** The document with both tables regenerated; missing markers are an error, not a silent append. */
export function withOptionTables(doc: string): string {
  let out = doc
  for (const side of CONFIG_SIDES) {
    const start = out.indexOf(BEGIN(side))
    const end = out.indexOf(END(side))
    if (start < 0 || end < start) throw new Error(`docs/configuration.md lacks the ${side} table markers`)
    out = out.slice(0, start) + optionTable(side) + out.slice(end + END(side).length)
  }
  return out
}
