import { TunnelError } from '../errors/index.ts'

/** One problem, with where it came from: "FILE:LINE", "env APPTUNNEL_LISTEN", "flag --listen". */
export interface SourcedIssue {
  field: string
  message: string
  source: string
}

/** One line per problem: "field: what is wrong (where it came from)". */
export function formatIssue(i: SourcedIssue): string {
  return `${i.field}: ${i.message} (${i.source})`
}

/** A configuration file that cannot be read or parsed: every problem in one TUN_ERR_CONFIG_INVALID. */
export function invalidConfigFile(issues: SourcedIssue[]): TunnelError {
  return new TunnelError('TUN_ERR_CONFIG_INVALID', issues.map(formatIssue).join('; '), { details: { issues } })
}
