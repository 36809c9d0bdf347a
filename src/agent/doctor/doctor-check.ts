/**
 * One line of `apptunnel doctor`: what was checked, the verdict, what was seen, and what to do
 * when it is not ok. The JSON output prints these as they are (the automation contract).
 */
export type Verdict = 'ok' | 'warn' | 'fail' | 'skipped'

export type CheckId = 'upstream-http' | 'server-dns' | 'server-tcp' | 'server-tls' | 'key-valid' | 'cluster-nodes' | 'instance-url'

export interface CheckResult {
  /** position in the run, 1-7: "because check N failed" refers to it */
  number: number
  id: CheckId
  title: string
  verdict: Verdict
  /** what was seen, or why the check did not run */
  detail: string
  /** what to do about a fail or warn; empty otherwise */
  fix: string
  /** the error code behind a failure, when there is one */
  code?: string
}

/** The fixed order and titles of the checks. */
export const CHECKS: ReadonlyArray<{ number: number; id: CheckId; title: string }> = [
  { number: 1, id: 'upstream-http', title: 'upstream port answers plain HTTP' },
  { number: 2, id: 'server-dns', title: 'tunnel server name resolves' },
  { number: 3, id: 'server-tcp', title: 'tunnel server answers on its port' },
  { number: 4, id: 'server-tls', title: 'TLS certificate verifies' },
  { number: 5, id: 'key-valid', title: 'server accepts the security key' },
  { number: 6, id: 'cluster-nodes', title: 'cluster nodes are up' },
  { number: 7, id: 'instance-url', title: 'app base URL matches the instance URL' },
]

/** What a single check function returns; the runner adds number, id and title. */
export interface Finding {
  verdict: Verdict
  detail: string
  fix?: string
  code?: string
}

export const ok = (detail: string): Finding => ({ verdict: 'ok', detail })
export const warn = (detail: string, fix: string): Finding => ({ verdict: 'warn', detail, fix })
export const fail = (detail: string, fix: string, code?: string): Finding => ({ verdict: 'fail', detail, fix, ...(code === undefined ? {} : { code }) })
export const skipped = (detail: string): Finding => ({ verdict: 'skipped', detail })
