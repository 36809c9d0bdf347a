import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'

checkNoLeakedHandles()

const FIXTURE = new URL('./fixtures/delete-under-idle-caller.ts', import.meta.url).pathname

test('deleting a tunnel under an idle keep-alive caller connection: the server stays live, the caller gets 404', async () => {
  // In a child watched for memory (killed past 1.5 GB resident) and time (30 s): the bug this
  // guards against spun in native http2 code, allocating until the machine ran out of memory.
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  let peakKb = 0
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const watch = setInterval(() => {
    readFile(`/proc/${child.pid}/status`, 'utf8').then(
      (status) => {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
        peakKb = Math.max(peakKb, kb)
        if (kb > 1_500_000) child.kill('SIGKILL')
      },
      () => {},
    )
  }, 100)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  clearTimeout(killer)
  clearInterval(watch)
  assert.ok(peakKb <= 1_500_000, `memory stayed bounded (peak ${Math.round(peakKb / 1024)} MiB)`)
  assert.equal(code, 0, `the scenario finished (exit ${code}); stderr: ${err.slice(-2000)}`)
  const result = JSON.parse(out.trim()) as { ticks: number; statusAfter: number; agent: string }
  assert.ok(result.ticks >= 3, `timers kept firing after the delete (${result.ticks} ticks in 500 ms)`)
  assert.equal(result.statusAfter, 404, 'the next request on the same connection finds no tunnel')
  assert.equal(result.agent, 'ERROR', 'the agent was told the tunnel is gone')
})
