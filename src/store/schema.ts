import type { ColumnType, Generated } from 'kysely'

// Timestamps are ISO-8601 UTC text on both dialects: they compare and sort the same everywhere,
// and no driver converts them to Date behind our back.

export interface OrgTable {
  id: string
  name: string
  created_at: string
}

export interface ApiTokenTable {
  id: string
  org_id: string
  name: string
  token_hash: string
  created_at: string
  last_used_at: string | null
}

export interface TunnelTable {
  id: string
  org_id: string
  name: string
  instance_url: string | null
  secret_hash: string
  created_at: string
  first_connected_at: string | null
  last_connected_at: string | null
  last_disconnected_at: string | null
}

export interface AuditEventTable {
  // PostgreSQL hands back bigint identities as strings; the repository turns them into numbers.
  id: Generated<ColumnType<number | string, never, never>>
  at: string
  org_id: string
  actor: string
  action: string
  target: string | null
  source_address: string | null
  details: string | null
}

export interface SecurityPropertyTable {
  property_key: string
  property_value: string
}

export interface ClusterNodeTable {
  id: string
  kind: string
  address: string
  started_at: string
  heartbeat_at: string
  /** JSON the node refreshes with each heartbeat: bus links, key id, auth statistics */
  status: string | null
  /** server replicas: the https origin agents dial to reach this replica directly (migration 0006) */
  agent_url: string | null
  /** server replicas with a self-signed certificate: its SPKI pin */
  agent_pin: string | null
}

export interface TunnelPresenceTable {
  tunnel_id: string
  node_id: string
  since: string
}

export interface InstanceTunnelTable {
  /** always 'instance'; see migration 0003 */
  slot: string
  security_key: string
  tunnel_id: string
  server_url: string
  added_at: string
  added_by: string | null
  tunnel_name: string | null
  connected_to: string | null
  application_link_url: string | null
}

export interface InstanceNodeTable {
  node_id: string
  address: string
  version: string
  started_at: string
  heartbeat_at: string
  heartbeat_ms: number
  stopped_at: string | null
  tunnel_id: string | null
  status: string | null
  reason: Generated<string>
  code: string | null
  status_since: string
  // integer columns: a JS number from both drivers (unlike bigint, which pg returns as a string).
  sessions: Generated<number>
  sessions_wanted: Generated<number>
}

export interface LinkedProductTable {
  id: string
  tunnel_id: string
  name: string
  credential_hash: string | null
  /** JSON array of CIDR strings */
  cidrs: string
  created_at: string
}

export interface ConsoleUserTable {
  id: string
  /** null in an on-prem instance database */
  org_id: string | null
  username: string
  password_hash: string
  created_at: string
  password_changed_at: string
}

export interface ConsoleSessionTable {
  id_hash: string
  user_id: string
  created_at: string
  last_seen_at: string
  source_address: string | null
}

export interface StoreSchema {
  org: OrgTable
  api_token: ApiTokenTable
  tunnel: TunnelTable
  audit_event: AuditEventTable
  security_property: SecurityPropertyTable
  cluster_node: ClusterNodeTable
  tunnel_presence: TunnelPresenceTable
  linked_product: LinkedProductTable
  instance_tunnel: InstanceTunnelTable
  instance_node: InstanceNodeTable
  console_user: ConsoleUserTable
  console_session: ConsoleSessionTable
}
