export { openDatabase, type Database, type MigrationStep, type OpenDatabaseOptions } from './database.ts'
export type { StoreDialect } from './store-dialect.ts'
export type { StoreSchema } from './schema.ts'
export { OrgRepository, type Org } from './org-repository.ts'
export { ApiTokenRepository, type ApiToken, type ApiTokenIdentity } from './api-token-repository.ts'
export { TunnelRepository, type NewTunnel, type Tunnel } from './tunnel-repository.ts'
export { AuditRepository, type AuditEvent, type NewAuditEvent } from './audit-repository.ts'
export { SecurityPropertyRepository } from './security-property-repository.ts'
export { ClusterNodeRepository, type AgentEndpoint, type ClusterNodeKind, type ClusterNodeRecord } from './cluster-node-repository.ts'
export { TunnelPresenceRepository } from './tunnel-presence-repository.ts'
export {
  InstanceKeyRepository,
  type AddInstanceKeyResult,
  type InstanceKeyRecord,
  type NewInstanceKey,
} from './instance-key-repository.ts'
export {
  InstanceNodeRepository,
  type InstanceNodeRecord,
  type InstanceNodeReport,
  type InstanceNodeStopStatus,
} from './instance-node-repository.ts'
export { LinkedProductRepository, type LinkedProduct } from './linked-product-repository.ts'
export { ConsoleUserRepository, type ConsoleUser } from './console-user-repository.ts'
export { ConsoleSessionRepository, type ConsoleSessionRecord } from './console-session-repository.ts'
