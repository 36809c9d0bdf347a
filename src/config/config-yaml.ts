import { isMap, isScalar, LineCounter, parseDocument, visit, type Pair } from 'yaml'
import { invalidConfigFile, type SourcedIssue } from './config-issues.ts'

/**
 * The YAML side of configuration files: loaded only when a file is read (config-file.ts imports it
 * on demand), so a server or agent started without one does not hold the YAML parser.
 */

export type ConfigSide = 'server' | 'agent'

/** The options of one side as a file gives them, with the line each is on. */
export interface FileOptions {
  values: Record<string, unknown>
  lines: Record<string, number>
}

/**
 * A parsed configuration file. A flat file holds the options of one side; a sectioned file holds
 * `server:` and/or `agent:` mappings, so one file can configure both processes of a host.
 */
export type ConfigFile = { path: string; kind: 'flat'; options: FileOptions } | { path: string; kind: 'sectioned'; sections: Partial<Record<ConfigSide, FileOptions>> }

/**
 * How many nodes YAML aliases may stand for in one file, nested aliases multiplied out. A
 * configuration needs a handful at most; a "billion laughs" document nests them to expand a few
 * lines into gigabytes, and is refused here before anything is expanded.
 */
export const MAX_YAML_ALIAS_EXPANSIONS = 100

/** Parses the text of a configuration file; `path` only names it in messages. */
export function parseConfigText(text: string, path: string): ConfigFile {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw invalidConfigFile(
      doc.errors.map((e) => {
        const line = e.linePos?.[0].line ?? lineCounter.linePos(e.pos[0]).line
        return { field: 'config', message: `YAML syntax error: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`, source: `${path}:${line}` }
      }),
    )
  }
  const root = doc.contents
  if (root === null) return { path, kind: 'flat', options: { values: {}, lines: {} } }
  if (!isMap(root)) throw invalidConfigFile([{ field: 'config', message: 'the file must hold a mapping of options (name: value)', source: `${path}:1` }])
  const lineOf = (pair: Pair) => {
    const start = isScalar(pair.key) ? pair.key.range?.[0] : undefined
    return start === undefined ? 1 : lineCounter.linePos(start).line
  }
  let value: Record<string, unknown>
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_EXPANSIONS }) as Record<string, unknown>
  } catch (err) {
    // yaml throws (a ReferenceError) when the aliases expand past the limit; that is the file's fault.
    let firstAlias: number | undefined
    visit(doc, {
      Alias(_, node) {
        firstAlias = node.range?.[0]
        return visit.BREAK
      },
    })
    const excessive = err instanceof ReferenceError && /excessive alias count/i.test(err.message)
    const message = excessive
      ? `YAML aliases (*name) expand to more than ${MAX_YAML_ALIAS_EXPANSIONS} nodes: refused as a resource exhaustion attack ("billion laughs"); write the values out`
      : `YAML aliases cannot be resolved: ${(err as Error).message}`
    throw invalidConfigFile([{ field: 'config', message, source: `${path}:${firstAlias === undefined ? 1 : lineCounter.linePos(firstAlias).line}` }])
  }
  const pairs = root.items as Pair[]
  const isSection = (p: Pair) => isScalar(p.key) && (p.key.value === 'server' || p.key.value === 'agent')
  if (!pairs.some(isSection)) return { path, kind: 'flat', options: optionsFrom(pairs, value, lineOf) }

  const issues: SourcedIssue[] = []
  const sections: Partial<Record<ConfigSide, FileOptions>> = {}
  for (const pair of pairs) {
    const name = String(isScalar(pair.key) ? pair.key.value : pair.key)
    if (!isSection(pair)) {
      issues.push({ field: name, message: 'a file with server: or agent: sections holds nothing else at the top level; put the option under its section', source: `${path}:${lineOf(pair)}` })
      continue
    }
    const side = name as ConfigSide
    if (pair.value === null || (isScalar(pair.value) && pair.value.value === null)) {
      sections[side] = { values: {}, lines: {} }
    } else if (!isMap(pair.value)) {
      issues.push({ field: side, message: `the ${side}: section must be a mapping of options (name: value)`, source: `${path}:${lineOf(pair)}` })
    } else {
      sections[side] = optionsFrom(pair.value.items as Pair[], value[side] as Record<string, unknown>, lineOf)
    }
  }
  if (issues.length > 0) throw invalidConfigFile(issues)
  return { path, kind: 'sectioned', sections }
}

function optionsFrom(pairs: Pair[], values: Record<string, unknown>, lineOf: (p: Pair) => number): FileOptions {
  const lines: Record<string, number> = {}
  for (const pair of pairs) lines[String(isScalar(pair.key) ? pair.key.value : pair.key)] = lineOf(pair)
  return { values: { ...values }, lines }
}
