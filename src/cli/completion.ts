import { Argument, type Command } from 'commander'
import { TunnelError } from '../errors/index.ts'

/**
 * `apptunnel completion bash|zsh|fish`: a completion script generated from the commander tree at
 * the moment it is asked for, so every command, subcommand and option the CLI has is in it and
 * nothing it lost lingers. Each shell gets the same model: walk the words typed so far (skipping
 * options and the value of an option that takes one) to find the command, then offer its
 * subcommands, its options, the choices or files of the option being given a value, or the
 * choices of its first argument.
 */

export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const
export type CompletionShell = (typeof COMPLETION_SHELLS)[number]

interface OptionSpec {
  /** -V, --version: every spelling */
  names: string[]
  description: string
  takesValue: boolean
  value: 'file' | 'dir' | 'choices' | 'text' | 'none'
  choices: string[]
}

interface CommandSpec {
  /** words after `apptunnel`, '' for the program itself */
  path: string
  subcommands: { name: string; description: string }[]
  options: OptionSpec[]
  /** the choices of the first argument, when it has them (completion <shell>, help <command>) */
  argChoices: string[]
}

/** Words go into the scripts unquoted in places; anything else would be a bug to fail on, not to emit. */
const WORD = /^[A-Za-z0-9][A-Za-z0-9_.-]*$|^--?[A-Za-z0-9][A-Za-z0-9-]*$/

function word(w: string): string {
  if (!WORD.test(w)) throw new TunnelError('TUN_ERR_INTERNAL', `completion: "${w}" cannot be completed safely`)
  return w
}

function valueKind(option: { long?: string | undefined; flags: string; argChoices?: string[] | undefined }): OptionSpec['value'] {
  if (option.argChoices !== undefined) return 'choices'
  const arg = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1]
  if (arg === undefined) return 'none'
  if (/file|^db$/.test(arg) || option.long === '--database') return 'file'
  if (/dir/.test(arg)) return 'dir'
  return 'text'
}

/** Every command of the tree, parents before children. */
export function completionModel(program: Command): CommandSpec[] {
  const out: CommandSpec[] = []
  // helpOf: for commander's implicit `help [command]`, the command whose subcommands it names.
  const visit = (cmd: Command, path: string[], helpOf?: Command): void => {
    const help = cmd.createHelp()
    const subs = help.visibleCommands(cmd)
    const first = cmd.registeredArguments[0] as Argument | undefined
    const argChoices = helpOf !== undefined ? help.visibleCommands(helpOf).filter((c) => helpOf.commands.includes(c)).map((c) => c.name()) : (first?.argChoices ?? [])
    out.push({
      path: path.join(' '),
      subcommands: subs.map((c) => ({ name: word(c.name()), description: c.summary() || c.description() })),
      options: help.visibleOptions(cmd).map((o) => {
        const value = valueKind(o)
        return {
          names: [o.short, o.long].filter((n): n is string => n !== undefined).map(word),
          description: o.description,
          takesValue: o.required || o.optional,
          value,
          choices: (o.argChoices ?? []).map(word),
        }
      }),
      argChoices: argChoices.map(word),
    })
    for (const sub of subs) visit(sub, [...path, sub.name()], cmd.commands.includes(sub) ? undefined : cmd)
  }
  visit(program, [])
  return out
}

export function completionScript(program: Command, shell: CompletionShell): string {
  const model = completionModel(program)
  const name = word(program.name())
  if (shell === 'bash') return bashScript(name, model)
  if (shell === 'zsh') return zshScript(name, model)
  return fishScript(name, model)
}

const valued = (c: CommandSpec) => c.options.filter((o) => o.takesValue).flatMap((o) => o.names)
const ofKind = (c: CommandSpec, kind: OptionSpec['value']) => c.options.filter((o) => o.value === kind).flatMap((o) => o.names)
const withChoices = (model: CommandSpec[]) => model.flatMap((c) => c.options.filter((o) => o.value === 'choices').map((o) => ({ path: c.path, names: o.names, choices: o.choices })))
/** A path as a case pattern or shell string: words joined by one space, nothing to quote. */
const sq = (s: string) => `'${s}'`

function bashScript(name: string, model: CommandSpec[]): string {
  const fn = `_${name}`
  const specs = model.map((c) =>
    [
      `    ${sq(c.path)})`,
      `      subs=${sq(c.subcommands.map((s) => s.name).join(' '))}`,
      `      opts=${sq(c.options.flatMap((o) => o.names).join(' '))}`,
      `      valued=${sq(valued(c).join(' '))}`,
      `      files=${sq(ofKind(c, 'file').join(' '))}`,
      `      dirs=${sq(ofKind(c, 'dir').join(' '))}`,
      `      args=${sq(c.argChoices.join(' '))} ;;`,
    ].join('\n'),
  )
  const choiceCases = withChoices(model).map(
    (o) => `      ${o.names.map((n) => sq(`${o.path}|${n}`)).join('|')}) COMPREPLY=($(compgen -W ${sq(o.choices.join(' '))} -- "$cur")) ;;`,
  )
  return `# bash completion for ${name}, generated from its commands by \`${name} completion bash\`.
# This shell:   source <(${name} completion bash)
# Every shell:  ${name} completion bash > ~/.local/share/bash-completion/completions/${name}

# Sets subs, opts, valued (options that take a value), files, dirs and args for one command path.
${fn}_spec() {
  subs= opts= valued= files= dirs= args=
  case "$1" in
${specs.join('\n')}
  esac
}

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev= path= w i
  local subs opts valued files dirs args
  ${fn}_spec ''
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    case "$w" in
      --*=*) ;;
      -*) [[ " $valued " == *" $w "* ]] && ((i += 1)) ;;
      *) if [[ " $subs " == *" $w "* ]]; then path=\${path:+$path }$w; ${fn}_spec "$path"; fi ;;
    esac
  done
  ((COMP_CWORD > 1)) && prev=\${COMP_WORDS[COMP_CWORD-1]}
  COMPREPLY=()
  if [[ $prev == -* && " $valued " == *" $prev "* ]]; then
    case "$path|$prev" in
${choiceCases.join('\n')}
      *)
        if [[ " $files " == *" $prev "* ]]; then compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))
        elif [[ " $dirs " == *" $prev "* ]]; then compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))
        fi ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ -n $subs ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  elif [[ -n $args ]]; then
    COMPREPLY=($(compgen -W "$args" -- "$cur"))
  fi
  return 0
}

complete -F ${fn} ${name}
`
}

/** zsh single quotes: nothing is special inside but the quote itself. */
const zq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
/** _describe splits "name:description" at the first colon; a newline would end the entry. */
const described = (n: string, d: string) => zq(`${n}:${d.replace(/\s+/g, ' ')}`)

function zshScript(name: string, model: CommandSpec[]): string {
  const fn = `_${name}`
  const specs = model.map((c) =>
    [
      `    (${sq(c.path)})`,
      `      subnames=(${c.subcommands.map((s) => s.name).join(' ')})`,
      `      subs=(${c.subcommands.map((s) => described(s.name, s.description)).join(' ')})`,
      `      opts=(${c.options.flatMap((o) => o.names.map((n) => described(n, o.description))).join(' ')})`,
      `      valued=(${valued(c).join(' ')})`,
      `      files=(${ofKind(c, 'file').join(' ')})`,
      `      dirs=(${ofKind(c, 'dir').join(' ')})`,
      `      args=(${c.argChoices.join(' ')}) ;;`,
    ].join('\n'),
  )
  const choiceCases = withChoices(model).map((o) => `      (${o.names.map((n) => sq(`${o.path}|${n}`)).join('|')}) compadd -- ${o.choices.join(' ')} ;;`)
  return `#compdef ${name}
# zsh completion for ${name}, generated from its commands by \`${name} completion zsh\`.
# This shell:   source <(${name} completion zsh)
# Every shell:  ${name} completion zsh > "\${fpath[1]}/_${name}"   (then start a new shell)

# Sets subnames, subs, opts, valued (options that take a value), files, dirs and args for one command path.
${fn}_spec() {
  subnames=() subs=() opts=() valued=() files=() dirs=() args=()
  case "$1" in
${specs.join('\n')}
  esac
}

${fn}() {
  local cmdpath= w prev
  local -a subnames subs opts valued files dirs args
  local -i i
  ${fn}_spec ''
  for (( i = 2; i < CURRENT; i++ )); do
    w=\${words[i]}
    if [[ $w == --*=* ]]; then
      :
    elif [[ $w == -* ]]; then
      (( \${valued[(Ie)$w]} )) && (( i += 1 ))
    elif (( \${subnames[(Ie)$w]} )); then
      cmdpath=\${cmdpath:+$cmdpath }$w
      ${fn}_spec "$cmdpath"
    fi
  done
  prev=\${words[CURRENT-1]}
  if [[ $prev == -* ]] && (( \${valued[(Ie)$prev]} )); then
    case "$cmdpath|$prev" in
${choiceCases.join('\n')}
      (*)
        if (( \${files[(Ie)$prev]} )); then _files
        elif (( \${dirs[(Ie)$prev]} )); then _files -/
        else _message 'a value'
        fi ;;
    esac
    return
  fi
  if [[ \${words[CURRENT]} == -* ]] || (( \${#subnames} == 0 && \${#args} == 0 )); then
    _describe -t options option opts
  elif (( \${#subnames} )); then
    _describe -t commands command subs
  else
    compadd -- $args
  fi
}

if [[ "\${funcstack[1]}" == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`
}

/** fish single quotes: backslash escapes the quote and itself. */
const fq = (s: string) => `'${s.replace(/\s+/g, ' ').replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`

function fishScript(name: string, model: CommandSpec[]): string {
  const fn = `__${name}`
  const lines: string[] = []
  for (const c of model) {
    const when = `-n ${fq(`${fn}_is ${fq(c.path)}`)}`
    for (const s of c.subcommands) lines.push(`complete -c ${name} ${when} -a ${s.name} -d ${fq(s.description)}`)
    if (c.subcommands.length === 0 && c.argChoices.length > 0) lines.push(`complete -c ${name} ${when} -a ${fq(c.argChoices.join(' '))}`)
    for (const o of c.options) {
      const names = o.names.map((n) => (n.startsWith('--') ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`)).join(' ')
      const value = !o.takesValue ? '' : o.value === 'choices' ? ` -x -a ${fq(o.choices.join(' '))}` : o.value === 'file' || o.value === 'dir' ? ' -r -F' : ' -x'
      lines.push(`complete -c ${name} ${when} ${names}${value} -d ${fq(o.description)}`)
    }
  }
  const paths = model.filter((c) => c.path !== '').map((c) => fq(c.path))
  const valuedPairs = model.flatMap((c) => valued(c).map((v) => fq(`${c.path}|${v}`)))
  return `# fish completion for ${name}, generated from its commands by \`${name} completion fish\`.
# This shell:   ${name} completion fish | source
# Every shell:  ${name} completion fish > ~/.config/fish/completions/${name}.fish

# The command path typed so far: subcommand words, skipping options and the values they take.
function ${fn}_path
    set -l paths ${paths.join(' ')}
    set -l valued ${valuedPairs.join(' ')}
    set -l words (commandline -opc)
    set -e words[1]
    set -l path ''
    set -l skip 0
    for w in $words
        if test $skip -eq 1
            set skip 0
            continue
        end
        switch $w
            case '--*=*'
            case '-*'
                if contains -- "$path|$w" $valued
                    set skip 1
                end
            case '*'
                set -l next (string trim -- "$path $w")
                if contains -- $next $paths
                    set path $next
                end
        end
    end
    echo $path
end

function ${fn}_is
    set -l path (${fn}_path)
    test "$path" = "$argv[1]"
end

complete -c ${name} -f
${lines.join('\n')}
`
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(apptunnel completion bash), or see the script\'s first lines for zsh and fish')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(COMPLETION_SHELLS))
    .action((shell: CompletionShell) => {
      process.stdout.write(completionScript(program, shell))
    })
}
