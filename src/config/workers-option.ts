import { availableParallelism } from 'node:os'
import { z } from 'zod'
import type { OptionDocs } from './config-options.ts'
import type { ListenAddress } from './listen-address.ts'

/** More workers than this is a typo, not a host: each one is a process of ~80 MiB and a bus link to every other. */
export const MAX_WORKERS = 64

const NOT_A_COUNT = `expected a whole number from 1 to ${MAX_WORKERS}, or "auto" (one worker per available core)`

/**
 * `apptunnel server --workers N|auto`: how many server processes share this host's ingress port.
 * A number in a file; text from a flag or a variable, so both are read here.
 */
export const workersShape = {
  workers: z
    .union([z.number(), z.string()])
    .superRefine((value, ctx) => {
      if (workerCountOf(value) === undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a number of workers: ${NOT_A_COUNT}` })
    })
    .default(1),
}

export const workersOptionDocs: OptionDocs<typeof workersShape> = {
  workers: {
    value: 'count',
    description:
      'Server processes on this host behind one ingress port (a number, or `auto`: one per available core); 1 is a single process. Worker i listens for agents, metrics and its cluster bus on those ports + i. See [scaling.md](scaling.md#more-cores-on-one-host).',
  },
}

/** The number of workers a valid value asks for (`auto`: the cores this process may use, at most MAX_WORKERS); undefined for an invalid one. */
export function workerCountOf(value: number | string): number | undefined {
  if (value === 'auto') return Math.min(availableParallelism(), MAX_WORKERS)
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN
  return Number.isInteger(n) && n >= 1 && n <= MAX_WORKERS ? n : undefined
}

/** The listeners a worker has of its own, as the options give them (before the worker's offset). */
export interface WorkerListeners {
  listen: ListenAddress
  metricsListen: ListenAddress | undefined
  /** the cluster bus listener and advertised address; with workers it is always set */
  clusterListen: ListenAddress | undefined
  clusterAdvertise: string | undefined
  /** the agent endpoint workers advertise: advertiseUrl, else publicUrl */
  advertiseUrl: string | undefined
  clusterNodeId: string | undefined
}

/** Longest node id a worker's suffix (`-w63`) can follow within the 64 characters of a node id. */
export const NODE_ID_ROOM = 60

/**
 * Problems ("option: what is wrong") with giving `workers` workers each its own listeners at the
 * options' ports + i: a port that would run past 65535, or an agent endpoint on port 0, which
 * cannot be advertised as port + i.
 */
export function workerListenerProblems(workers: number, l: WorkerListeners): string[] {
  if (workers <= 1) return []
  const last = workers - 1
  const problems: string[] = []
  const fits = (option: string, port: number, zeroAllowed: boolean): void => {
    if (port === 0 && !zeroAllowed) problems.push(`${option}: with workers, worker i listens on this port + i, so it must not be 0`)
    else if (port !== 0 && port + last > 65535) problems.push(`${option}: port ${port} + ${last} (the last of ${workers} workers) is past 65535`)
  }
  fits('listen', l.listen.port, false)
  // Port 0 gives each worker a port of its own (the listener is the worker's, not shared).
  if (l.metricsListen !== undefined) fits('metricsListen', l.metricsListen.port, true)
  if (l.clusterListen !== undefined) fits('clusterListen', l.clusterListen.port, true)
  if (l.clusterAdvertise !== undefined) fits('clusterAdvertise', Number(/:(\d+)$/.exec(l.clusterAdvertise)?.[1] ?? 0), false)
  if (l.advertiseUrl !== undefined) fits('advertiseUrl', urlPort(l.advertiseUrl), false)
  if (l.clusterNodeId !== undefined && l.clusterNodeId.length > NODE_ID_ROOM) {
    problems.push(`clusterNodeId: with workers, worker i is <clusterNodeId>-w<i>, so it may have at most ${NODE_ID_ROOM} characters`)
  }
  return problems
}

/** The port of an https:// URL, explicit or implied. */
export function urlPort(url: string): number {
  const parsed = new URL(url)
  return parsed.port === '' ? 443 : Number(parsed.port)
}
