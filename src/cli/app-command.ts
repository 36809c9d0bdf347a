import { Command } from 'commander'
import { printError } from './output.ts'

/**
 * The program's Command class: commander's parsing, with usage errors reported the way the rest of
 * the CLI reports errors. A mistyped option gets one line naming the command and the nearest
 * option, and one line pointing at that command's --help, instead of the whole help text (which
 * buries the mistake); with --json the same error is one JSON object. Always exit code 2.
 */
export class AppCommand extends Command {
  override createCommand(name?: string): Command {
    return new AppCommand(name)
  }

  override error(message: string, errorOptions?: { code?: string; exitCode?: number }): never {
    const code = errorOptions?.code
    const path = commandPath(this)
    let text = message.replace(/^error: /, '').replace(/\s*\(Did you mean (one of )?(.+)\?\)\s*$/s, ' (did you mean $1$2?)')
    if (code === 'commander.unknownOption' && path !== '') text = text.replace(/^(unknown option '[^']*')/, `$1 for '${path}'`)
    const help = `Run '${[this.rootName(), path].filter((p) => p !== '').join(' ')} --help'`
    const hint = `${help} for the ${code === 'commander.unknownCommand' ? 'commands' : 'options'}.`
    printError('TUN_ERR_CLI_USAGE', text, { hint, showCode: false })
    process.exit(2)
  }

  private rootName(): string {
    let root: Command = this
    while (root.parent !== null) root = root.parent
    return root.name()
  }
}

/** The words after the program's name that lead to `cmd`, e.g. 'tunnel product add'. */
function commandPath(cmd: Command): string {
  const words: string[] = []
  for (let c: Command | null = cmd; c !== null && c.parent !== null; c = c.parent) words.unshift(c.name())
  return words.join(' ')
}
