import { execFile, spawnSync } from 'node:child_process'
import { open } from 'node:fs/promises'
import { PATTERN_BLOCK } from './pattern.ts'

/**
 * wrk and curl, the clients users measure a tunnel with, run against the same targets as the
 * bench's own load generator in the same run: a cross-check that our generator does not flatter
 * (or handicap) one side. Both are optional; a run without them says so and goes on.
 */

export interface WrkResult {
  requests: number
  seconds: number
  rps: number
  p50Ms: number
  p99Ms: number
  /** non-2xx/3xx responses plus socket errors (connect, read, write, timeout) */
  errors: number
}

export interface CurlResult {
  status: number
  /** bytes of the response body */
  bytes: number
  seconds: number
  MBps: number
}

export function wrkInstalled(): boolean {
  return spawnSync('wrk', ['-v']).error === undefined
}

export function curlInstalled(): boolean {
  return spawnSync('curl', ['--version']).status === 0
}

const TIME_UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

function timeMs(text: string, what: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  if (m === null) throw new Error(`wrk: cannot read ${what} "${text}"`)
  return Number(m[1]) * TIME_UNIT_MS[m[2]!]!
}

/** Reads the report of `wrk --latency`: totals, requests/s, the 50th and 99th percentiles, errors. */
export function parseWrkOutput(text: string): WrkResult {
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m.exec(text)
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text)
  const p50 = /^\s+50%\s+(\S+)$/m.exec(text)
  const p99 = /^\s+99%\s+(\S+)$/m.exec(text)
  if (total === null || rps === null || p50 === null || p99 === null) {
    throw new Error(`wrk: unexpected output (was --latency given?): ${text.trim().split('\n').slice(0, 3).join(' / ')}`)
  }
  let errors = 0
  const non2xx = /^\s*Non-2xx or 3xx responses:\s+(\d+)/m.exec(text)
  if (non2xx !== null) errors += Number(non2xx[1])
  const socket = /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m.exec(text)
  if (socket !== null) errors += socket.slice(1).reduce((a, n) => a + Number(n), 0)
  return {
    requests: Number(total[1]),
    seconds: timeMs(`${total[2]}${total[3]}`, 'duration') / 1000,
    rps: Number(rps[1]),
    p50Ms: timeMs(p50[1]!, 'the 50th percentile'),
    p99Ms: timeMs(p99[1]!, 'the 99th percentile'),
    errors,
  }
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${cmd} failed: ${err.message.split('\n')[0]} ${stderr.trim().split('\n').slice(-2).join(' ')}`))
      else resolve(stdout)
    })
  })
}

/** Small GETs with wrk, one thread (like the bench's own generator, one process), for durationMs. */
export async function runWrk(opts: { port: number; host: string; path: string; connections: number; durationMs: number }): Promise<WrkResult> {
  const seconds = Math.max(1, Math.round(opts.durationMs / 1000))
  const out = await run(
    'wrk',
    ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '--latency', '-H', `Host: ${opts.host}`, `http://127.0.0.1:${opts.port}${opts.path}`],
    (seconds + 30) * 1000,
  )
  return parseWrkOutput(out)
}

const CURL_FORMAT = '%{http_code} %{size_download} %{time_total}'

/** Reads curl's `-w '%{http_code} %{size_download} %{time_total}'` line. */
export function parseCurlWriteOut(text: string): { status: number; bytes: number; seconds: number } {
  const m = /^(\d{3}) (\d+) ([\d.]+)\s*$/.exec(text)
  if (m === null) throw new Error(`curl: unexpected -w output "${text.trim()}"`)
  return { status: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]) }
}

/**
 * One bulk transfer with curl: a GET of `bytes` pattern bytes, or a POST of `uploadFile` (whose
 * size is `bytes`) echoed back. curl checks the length, not the content; the bench's own
 * generator verifies every byte of the same transfers.
 */
export async function runCurl(opts: { kind: 'get' | 'post'; port: number; host: string; bytes: number; uploadFile?: string; timeoutMs: number }): Promise<CurlResult> {
  const common = ['-sS', '-o', '/dev/null', '-w', CURL_FORMAT, '-H', `Host: ${opts.host}`]
  const args =
    opts.kind === 'get'
      ? [...common, `http://127.0.0.1:${opts.port}/bytes?n=${opts.bytes}`]
      : // -T streams the file with its Content-Length; an empty Expect skips the 100-continue wait.
        [...common, '-X', 'POST', '-T', opts.uploadFile ?? '', '-H', 'Expect:', '-H', 'Content-Type: application/octet-stream', `http://127.0.0.1:${opts.port}/echo`]
  if (opts.kind === 'post' && opts.uploadFile === undefined) throw new Error('curl POST needs the file to upload')
  const r = parseCurlWriteOut(await run('curl', args, opts.timeoutMs))
  if (r.status !== 200) throw new Error(`curl ${opts.kind.toUpperCase()}: HTTP ${r.status}`)
  if (r.bytes !== opts.bytes) throw new Error(`curl ${opts.kind.toUpperCase()}: ${r.bytes} bytes received, expected ${opts.bytes}`)
  return { ...r, MBps: r.bytes / 1e6 / r.seconds }
}

/** Writes `bytes` of the bench pattern to a file, for curl to upload. */
export async function writePatternFile(path: string, bytes: number): Promise<void> {
  const f = await open(path, 'w')
  try {
    for (let left = bytes; left > 0; left -= PATTERN_BLOCK.length) {
      await f.write(left >= PATTERN_BLOCK.length ? PATTERN_BLOCK : PATTERN_BLOCK.subarray(0, left))
    }
  } finally {
    await f.close()
  }
}
