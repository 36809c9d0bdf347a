import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { withOptionTables } from '../cli/config-reference.ts'
import { CONFIG_SIDES } from './config-file.ts'
import { optionsOfSide } from './config-sources.ts'

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')

/** `name → default cell` of one side's table. */
function documentedDefaults(side: string): Map<string, string> {
  const start = doc.indexOf(`<!-- ${side}-options:begin`)
  const end = doc.indexOf(`<!-- ${side}-options:end`)
  assert.ok(start >= 0 && end > start, `docs/configuration.md has the ${side} table`)
  const out = new Map<string, string>()
  for (const line of doc.slice(start, end).split('\n')) {
    const cells = line.split(' | ')
    const m = /^\| `([A-Za-z0-9]+)`$/.exec(cells[0] ?? '')
    if (m !== null) out.set(m[1]!, cells[2]!)
  }
  return out
}

for (const side of CONFIG_SIDES) {
  test(`docs/configuration.md documents every ${side} option, and only those, with the schema's default`, () => {
    const documented = documentedDefaults(side)
    const options = optionsOfSide(side)
    const missing = options.filter((o) => !documented.has(o.name)).map((o) => o.name)
    assert.deepEqual(missing, [], `options missing from the ${side} table`)
    const extra = [...documented.keys()].filter((n) => !options.some((o) => o.name === n))
    assert.deepEqual(extra, [], `documented ${side} options the schema does not have`)
    for (const o of options) {
      const cell = documented.get(o.name)!
      const expected = o.defaultValue === undefined ? (o.required ? 'required' : '—') : `\`${String(o.defaultValue)}\``
      assert.equal(cell === '`""`' ? '``' : cell, expected, `${side} ${o.name}: documented default ${cell}, schema default ${String(o.defaultValue)}`)
    }
  })

  test(`every ${side} option's description is one line that fits a table cell`, () => {
    // One line: it is a cell of the table and a line of --help; a | would end the cell early.
    const unfit = optionsOfSide(side).filter((o) => o.description.trim() === '' || /[\n|]/.test(o.description)).map((o) => o.name)
    assert.deepEqual(unfit, [], `${side} options without a one-line description`)
  })
}

test('the option tables are what the schemas and flags generate (node --import tsx scripts/update-config-doc.ts)', () => {
  assert.equal(doc, withOptionTables(doc))
})
