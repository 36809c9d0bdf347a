import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { checkImports, importSpecifiers } from './check-imports.ts'

const SRC = fileURLToPath(new URL('../src', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'check-imports-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

let trees = 0
/** A source tree of the given files (path → text) in a fresh folder; returns its root. */
function tree(files: Record<string, string>): string {
  const root = join(scratch, String(++trees))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return root
}

test('the source tree keeps the one-way import rule and has no import cycle', () => {
  assert.deepEqual(checkImports(SRC).map((v) => v.message), [])
})

test('an import of a part on a higher layer is refused, naming both files and layers', () => {
  const root = tree({
    'errors/index.ts': 'export const e = 1\n',
    'protocol/frame.ts': "import { s } from '../server/start.ts'\nexport const f = s\n",
    'server/start.ts': "import { e } from '../errors/index.ts'\nexport const s = e\n",
  })
  const v = checkImports(root)
  assert.deepEqual(v.map((x) => x.kind), ['layer'])
  assert.match(v[0]!.message, /src\/protocol\/frame\.ts imports src\/server\/start\.ts: protocol \(layer 1\) .* server is on layer 6/)
})

test('parts on the same layer do not import each other (server and agent)', () => {
  const root = tree({
    'server/a.ts': "import type { B } from '../agent/b.ts'\nexport type A = B\n",
    'agent/b.ts': 'export type B = number\n',
  })
  assert.deepEqual(checkImports(root).map((x) => x.kind), ['layer'])
})

test('a cycle is refused even when every import in it is type-only', () => {
  const root = tree({
    'store/database.ts': "import type { M } from './migrations/index.ts'\nexport type D = 'a' | M\n",
    'store/migrations/index.ts': "import type {\n  D,\n} from '../database.ts'\nexport type M = Exclude<D, 'a'> | 'm'\n",
  })
  const v = checkImports(root)
  assert.deepEqual(v.map((x) => x.kind), ['cycle'])
  assert.equal(v[0]!.message, 'import cycle: src/store/database.ts → src/store/migrations/index.ts → src/store/database.ts')
})

test('production code does not import test helpers or test files; tests import anything', () => {
  const root = tree({
    'testing/free-port.ts': "import { s } from '../server/start.ts'\nexport const p = s\n",
    'server/start.ts': 'export const s = 1\n',
    'server/start.test.ts': "import { p } from '../testing/free-port.ts'\nimport { x } from '../cli/main.ts'\nvoid p, x\n",
    'cli/main.ts': "export const x = 1\nexport const y = await import('../testing/free-port.ts')\n",
  })
  const v = checkImports(root)
  assert.deepEqual(v.map((x) => x.kind), ['test-only'])
  assert.match(v[0]!.message, /src\/cli\/main\.ts imports the test helper src\/testing\/free-port\.ts/)
})

test('a new part of src/ must be given a layer', () => {
  const root = tree({ 'plugins/p.ts': 'export const p = 1\n' })
  assert.deepEqual(checkImports(root).map((x) => x.kind), ['unknown-part'])
})

test('imports are read from static, multi-line, re-export and dynamic forms, not from comments or strings', () => {
  const text = [
    "import { a } from './a.ts'",
    'import {',
    '  b,',
    "  type B,",
    "} from '../b.ts'",
    "export { c } from './c.ts'",
    "export type { D } from './d.ts'",
    "import './side-effect.ts'",
    "const e = await import('./e.ts')",
    "// import { no } from './commented.ts'",
    " * see import('./doc-comment.ts')",
    "const text = 'x from ./string.ts'",
    "import { pkg } from 'node:fs'",
  ].join('\n')
  assert.deepEqual(importSpecifiers(text).sort(), ['../b.ts', './a.ts', './c.ts', './d.ts', './e.ts', './side-effect.ts'])
})
