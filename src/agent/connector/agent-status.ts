/** On-prem statuses of one agent node (docs/onprem.md); the instance aggregates nodes (cluster work). */
export type AgentStatusName = 'CONNECTING' | 'CONNECTED' | 'UNAVAILABLE' | 'ERROR'

export interface AgentStatus {
  status: AgentStatusName
  /** one line a person can act on */
  reason: string
  /** the error code behind UNAVAILABLE or ERROR */
  code?: string
  since: string
}
