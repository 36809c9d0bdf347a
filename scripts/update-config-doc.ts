// Regenerates the option tables of docs/configuration.md from the config schemas and the
// descriptions beside them. Run: node --import tsx scripts/update-config-doc.ts
import { readFileSync, writeFileSync } from 'node:fs'
import { withOptionTables } from '../src/cli/config-reference.ts'

const path = new URL('../docs/configuration.md', import.meta.url)
const before = readFileSync(path, 'utf8')
const after = withOptionTables(before)
if (after !== before) writeFileSync(path, after)
process.stdout.write(after === before ? 'docs/configuration.md is up to date\n' : 'docs/configuration.md updated\n')
