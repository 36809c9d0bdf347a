import assert from 'node:assert/strict'

/**
 * Polls check every 20 ms until it holds, or fails the test naming what was awaited. For states
 * reached through sockets and timers, where no single event says "done".
 */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.fail(`not within ${timeoutMs} ms: ${what}`)
}
