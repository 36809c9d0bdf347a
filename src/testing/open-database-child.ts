// A process that opens stores the way `apptunnel server` does first at start, for tests that need
// several real processes (each its own SQLite connection and file locks) to open one at the same
// moment. It loads everything, prints "ready", then for each line on stdin opens the database the
// line names, prints a JSON line {migrated} or {code, message}, and closes it again. It exits when
// stdin ends. Loading once and opening on demand keeps the processes' opens close together, which
// separate process starts (a second or more of module loading each) would spread apart.
import { createInterface } from 'node:readline'
import { isTunnelError } from '../errors/index.ts'
import { openDatabase } from '../store/index.ts'

const lines = createInterface({ input: process.stdin })
process.stdout.write('ready\n')
for await (const target of lines) {
  try {
    const database = await openDatabase(target, { onMigration: () => {} })
    process.stdout.write(JSON.stringify({ migrated: database.migrated }) + '\n')
    await database.close()
  } catch (err) {
    const code = isTunnelError(err) ? err.code : undefined
    process.stdout.write(JSON.stringify({ code, message: err instanceof Error ? err.message : String(err) }) + '\n')
  }
}
