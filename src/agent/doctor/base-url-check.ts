import { fail, ok, skipped, type Finding } from './doctor-check.ts'
import { resolveLocation } from './upstream-check.ts'
import type { UpstreamAnswer } from './upstream-probe.ts'

/**
 * Check 7: does the app report the base URL the operator expects. A generic app has no standard
 * place that states its base URL, but one that has a configured base URL builds its redirects from
 * it: so the evidence is an absolute Location in the answer to `GET /`, asked with the Host that
 * callers through the tunnel send. Without such evidence, or without an expectation to hold it
 * against, the check says so rather than guess.
 */
export function judgeBaseUrl(answer: UpstreamAnswer & { kind: 'http' }, hostHeader: string, instanceOrigin: string | undefined): Finding {
  const asked = `GET / with Host ${hostHeader}`
  if (answer.location === undefined || !/^([a-z][a-z0-9+.-]*:)?\/\//i.test(answer.location)) {
    return skipped(`the app answered ${asked} with HTTP ${answer.status} and no absolute URL: it does not show which base URL it uses, so there is nothing to compare`)
  }
  const to = resolveLocation(answer.location, hostHeader)
  if (to === undefined) return skipped(`the app answered ${asked} with a Location that is not a URL ("${answer.location}")`)
  const reported = to.origin
  if (instanceOrigin !== undefined && reported === instanceOrigin) return ok(`the app redirects ${asked} to ${to.href}: its base URL is the instance URL ${instanceOrigin}`)
  if (to.host.toLowerCase() === hostHeader.toLowerCase()) {
    return skipped(`the app builds its redirect from the request's Host (${to.href}): it does not show a configured base URL, so there is nothing to compare`)
  }
  if (instanceOrigin === undefined) return skipped(`the app reports the base URL ${reported} (it redirects ${asked} to ${to.href}); give --instance-url to compare it with the URL you expect`)
  return fail(
    `the app reports the base URL ${reported} (it redirects ${asked} to ${to.href}), but the instance URL is ${instanceOrigin}`,
    `set the app's base URL to ${instanceOrigin} in its general settings, or give the right --instance-url: cloud products follow the base URL the app reports`,
  )
}
