import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

/** The CLI entry point, run as users run it (node bin/apptunnel.js). */
export const CLI = new URL('../../bin/apptunnel.js', import.meta.url).pathname

const run = promisify(execFile)

/**
 * Runs one CLI command to completion; never throws for a non-zero exit, which the caller asserts.
 * Standard input gets `input` and is then closed, as in `echo KEY | apptunnel …`.
 */
export async function cli(args: string[], env: Record<string, string> = {}, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const running = run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 30_000 })
    running.child.stdin?.end(input)
    const { stdout, stderr } = await running
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number | string | null; signal?: string | null; stdout?: string; stderr?: string }
    // A command still running at the timeout is killed: that is -1 and says so, never a plain 1.
    if (typeof e.signal === 'string') return { code: -1, stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}[killed by ${e.signal}: still running after 30 s]\n` }
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}
