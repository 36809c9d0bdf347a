import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { LAYERS, TEST_ONLY_PART } from './check-imports.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DOC = 'docs/architecture.md'
const text = readFileSync(new URL(`../${DOC}`, import.meta.url), 'utf8')

/** Repository paths the text names: anything under the top-level folders a reader would open. */
export function namedPaths(markdown: string): string[] {
  const found = new Set<string>()
  for (const m of markdown.matchAll(/(?<![\w./-])((?:src|e2e|bench|scripts|docs|deploy)\/[\w./-]*[\w/])/g)) found.add(m[1]!)
  return [...found].sort()
}

test('every file and folder docs/architecture.md names exists', () => {
  const paths = namedPaths(text)
  assert.ok(paths.length > 40, `the doc names ${paths.length} paths; the path reader is broken if this is small`)
  const missing = paths.filter((p) => !existsSync(`${ROOT}${p}`))
  assert.deepEqual(missing, [], `${DOC} names paths that do not exist`)
})

test('the path reader finds paths in prose, code spans and tables, and not inside other words', () => {
  assert.deepEqual(namedPaths('see `src/a/b.ts`, then docs/errors.md. | `src/cli/` | x/src/no.ts'), ['docs/errors.md', 'src/a/b.ts', 'src/cli/'])
})

test("the doc's table of parts has every part of src/ with the layer the import check uses", () => {
  const rows = new Map<string, number>()
  for (const m of text.matchAll(/^\| (\d+) \| `src\/([\w.-]+?)\/?` \|/gm)) rows.set(m[2]!, Number(m[1]))
  const parts = readdirSync(`${ROOT}src`).filter((n) => n !== TEST_ONLY_PART && (statSync(`${ROOT}src/${n}`).isDirectory() || n.endsWith('.ts')))
  for (const part of parts) assert.equal(rows.get(part), LAYERS[part], `src/${part}: layer in ${DOC} vs scripts/check-imports.ts`)
  assert.deepEqual([...rows.keys()].sort(), Object.keys(LAYERS).sort())
})
