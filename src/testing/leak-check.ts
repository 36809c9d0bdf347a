import { Socket } from 'node:net'
import { after } from 'node:test'

const WATCHED = new Set(['TCPSocketWrap', 'TCPServerWrap', 'TLSWrap', 'Timeout', 'Immediate'])

function watched(): string[] {
  return process.getActiveResourcesInfo().filter((r) => WATCHED.has(r))
}

/**
 * Fails the test file when sockets, servers or timers outlive its tests. Call once at the top of a
 * file, before other `after` hooks run their cleanups (hooks run in order of registration, so this
 * registers a check that runs last by deferring to the next turn after everything closed).
 */
export function checkNoLeakedHandles(): void {
  const baseline = watched().length
  after(async () => {
    // Give closing sockets a few turns of the loop to finish closing.
    for (let i = 0; i < 40; i++) {
      if (watched().length <= baseline) return
      await new Promise((r) => setTimeout(r, 50))
    }
    const left = watched()
    if (left.length > baseline) {
      const sockets = (process as unknown as { _getActiveHandles(): unknown[] })
        ._getActiveHandles()
        .filter((h): h is import('node:net').Socket => h instanceof Socket)
        .map((s) => `${s.constructor.name} ${s.localAddress}:${s.localPort}->${s.remoteAddress}:${s.remotePort} ${s.readyState}${s.connecting ? ' connecting' : ''}`)
      throw new Error(`leaked handles after the tests: ${left.join(', ')}${sockets.length > 0 ? ` (sockets ${sockets.join(', ')})` : ''}`)
    }
  })
}
