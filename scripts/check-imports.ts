/**
 * The dependency check of docs/architecture.md: imports between the parts of src/ flow one way,
 * and no module imports itself back through others (not even for a type).
 *
 *   node --import tsx scripts/check-imports.ts        (also run by `npm test`, scripts/check-imports.test.ts)
 *
 * A small scanner over the import statements rather than a bundler's graph: a bundler drops
 * `import type`, and the cycles this check exists for were type-only.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Each part of src/ and its layer: a production module may import its own part, or a part on a
 * lower layer, never one on its own layer or above. docs/architecture.md draws the same table.
 */
export const LAYERS: Readonly<Record<string, number>> = {
  'errors': 0,
  'version.ts': 0,
  'protocol': 1,
  'store': 1,
  'observability': 1,
  'security': 1,
  'transport': 2,
  'config': 3,
  'cluster': 4,
  'web': 5,
  'server': 6,
  'agent': 6,
  'demo': 6,
  'cli': 7,
}

/** Imported only by tests, bench and e2e; it may import every part. */
export const TEST_ONLY_PART = 'testing'

export interface ImportEdge {
  /** paths relative to the source root, with forward slashes */
  from: string
  to: string
}

export interface Violation {
  kind: 'layer' | 'cycle' | 'unknown-part' | 'test-only' | 'missing'
  message: string
}

const isTest = (file: string): boolean => file.endsWith('.test.ts')

function listTs(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) listTs(p, out)
    else if (name.endsWith('.ts')) out.push(p)
  }
  return out
}

/** Comment lines can quote an import; code never starts a line with `*` or `//`. */
function stripCommentLines(text: string): string {
  return text
    .split('\n')
    .map((line) => (/^\s*(\/\/|\*|\/\*)/.test(line) ? '' : line))
    .join('\n')
}

/** The relative specifiers a module imports or re-exports, static or dynamic, type-only included. */
export function importSpecifiers(text: string): string[] {
  const code = stripCommentLines(text)
  const found = new Set<string>()
  // A statement at the start of a line; [^'"`] keeps the match out of strings.
  for (const m of code.matchAll(/^(?:import|export)\b[^'"`;]*?\bfrom\s*(['"])(\.[^'"]*)\1/gm)) found.add(m[2]!)
  for (const m of code.matchAll(/^import\s*(['"])(\.[^'"]*)\1/gm)) found.add(m[2]!)
  for (const m of code.matchAll(/\bimport\(\s*(['"])(\.[^'"]*)\1\s*\)/g)) found.add(m[2]!)
  return [...found]
}

/** Every import between the .ts files under `root` (the src/ folder). */
export function importGraph(root: string): ImportEdge[] {
  const edges: ImportEdge[] = []
  for (const file of listTs(root)) {
    const from = relative(root, file).split(sep).join('/')
    for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
      const target = relative(root, normalize(join(dirname(file), spec))).split(sep).join('/')
      edges.push({ from, to: target })
    }
  }
  return edges
}

const partOf = (path: string): string => path.split('/')[0]!

/** What breaks the rule in `root`: imports against the layers, imports of test helpers, cycles. */
export function checkImports(root: string, layers: Readonly<Record<string, number>> = LAYERS): Violation[] {
  const edges = importGraph(root)
  const files = new Set(listTs(root).map((f) => relative(root, f).split(sep).join('/')))
  const violations: Violation[] = []
  for (const part of new Set([...files].map(partOf))) {
    if (part !== TEST_ONLY_PART && !(part in layers)) {
      violations.push({ kind: 'unknown-part', message: `src/${part} has no layer: add it to LAYERS in scripts/check-imports.ts and to docs/architecture.md` })
    }
  }
  for (const { from, to } of edges) {
    if (to.startsWith('..')) continue // outside src/: a test reading docs/ or bench/
    if (!files.has(to)) {
      violations.push({ kind: 'missing', message: `src/${from} imports src/${to}, which does not exist` })
      continue
    }
    if (isTest(to)) violations.push({ kind: 'test-only', message: `src/${from} imports the test file src/${to}` })
    if (isTest(from) || partOf(from) === TEST_ONLY_PART) continue
    const a = partOf(from)
    const b = partOf(to)
    if (b === TEST_ONLY_PART) {
      violations.push({ kind: 'test-only', message: `src/${from} imports the test helper src/${to}: production code does not use src/testing/` })
      continue
    }
    if (a === b || !(a in layers) || !(b in layers)) continue
    if (layers[b]! >= layers[a]!) {
      violations.push({ kind: 'layer', message: `src/${from} imports src/${to}: ${a} (layer ${layers[a]}) may only import parts on a lower layer, and ${b} is on layer ${layers[b]}` })
    }
  }
  for (const cycle of findCycles(edges.filter((e) => files.has(e.to)))) {
    violations.push({ kind: 'cycle', message: `import cycle: ${cycle.map((f) => `src/${f}`).join(' → ')}` })
  }
  return violations
}

/** One cycle per strongly connected group of modules, each listed from its first module back to it. */
function findCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>()
  for (const { from, to } of edges) {
    if (from === to) continue
    const list = next.get(from) ?? []
    list.push(to)
    next.set(from, list)
  }
  const cycles: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (node: string): void => {
    state.set(node, 'open')
    stack.push(node)
    for (const to of (next.get(node) ?? []).sort()) {
      const s = state.get(to)
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(to)), to])
      else if (s === undefined) visit(to)
    }
    stack.pop()
    state.set(node, 'done')
  }
  for (const node of [...next.keys()].sort()) if (!state.has(node)) visit(node)
  return cycles
}

if (process.argv[1] !== undefined && normalize(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('../src', import.meta.url))
  const violations = checkImports(root)
  for (const v of violations) process.stderr.write(`check-imports: ${v.message}\n`)
  if (violations.length > 0) process.exit(1)
  process.stdout.write('check-imports: imports flow one way, no cycles\n')
}
