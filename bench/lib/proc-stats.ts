import { readdirSync, readFileSync } from 'node:fs'

/** Linux clock ticks per second for /proc/<pid>/stat; 100 on every kernel config we run on. */
const TICKS_PER_SECOND = 100

/** CPU time (user + system) a process has used so far, in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name may contain spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) * 1000) / TICKS_PER_SECOND
}

/** Resident set size of a process now, in KiB. */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status)
  if (m === null) throw new Error(`no VmRSS for process ${pid}`)
  return Number(m[1])
}

/** Samples the RSS of some processes every intervalMs until stopped; keeps the peak and the mean of the sum. */
export function sampleRss(pids: number[], intervalMs = 100): { stop(): { peakSumKiB: number; meanSumKiB: number; peakByPid: number[] } } {
  const peaks = pids.map(() => 0)
  let peakSum = 0
  let total = 0
  let samples = 0
  const sample = (): void => {
    let sum = 0
    pids.forEach((pid, i) => {
      let r = 0
      try {
        r = rssKiB(pid)
      } catch {
        // ended meanwhile (an sshd child): it holds nothing any more
      }
      peaks[i] = Math.max(peaks[i]!, r)
      sum += r
    })
    peakSum = Math.max(peakSum, sum)
    total += sum
    samples++
  }
  sample()
  const timer = setInterval(sample, intervalMs)
  return {
    stop() {
      clearInterval(timer)
      sample()
      return { peakSumKiB: peakSum, meanSumKiB: total / samples, peakByPid: peaks }
    },
  }
}

/** Parent pid from a /proc/<pid>/stat line (the command name may contain spaces and parentheses). */
export function parentPidOf(statLine: string): number {
  return Number(statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')[1])
}

/**
 * A process and all its descendants now (for sshd, whose per-connection work runs in forked
 * children). Processes that end while the tree is read are skipped.
 */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch {
      continue
    }
    const ppid = parentPidOf(stat)
    const list = children.get(ppid)
    if (list === undefined) children.set(ppid, [Number(name)])
    else list.push(Number(name))
  }
  const out: number[] = []
  const stack = [root]
  while (stack.length > 0) {
    const pid = stack.pop()!
    out.push(pid)
    stack.push(...(children.get(pid) ?? []))
  }
  return out
}

/** The sum of cpuMs over processes, skipping any that has ended. */
export function cpuMsOf(pids: number[]): number {
  let sum = 0
  for (const pid of pids) {
    try {
      sum += cpuMs(pid)
    } catch {
      // ended meanwhile
    }
  }
  return sum
}

/** RSS split into anonymous memory (heaps, stacks) and mapped files (the node binary, libraries), KiB. */
export function rssSplitKiB(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)
    if (m === null) throw new Error(`no ${name} for process ${pid}`)
    return Number(m[1])
  }
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') }
}
