import type { ClusterAuthMode } from './cluster-auth-mode.ts'
import type { ClusterKey } from './auth-transcript.ts'

/**
 * What a handshake needs to know about keys. The key supplier implements it over the database;
 * tests implement it over a bare KeyRing.
 */
export interface HandshakeKeys {
  readonly mode: ClusterAuthMode
  /** the key this node proves with by default; undefined unless `mode` is `enabled` */
  current(): ClusterKey | undefined
  /** the key named by `kid` if it is accepted now (current, or previous within its grace) */
  accepted(kid: Buffer): ClusterKey | undefined
  /** A peer named a key or a mode this node does not share: re-read the key soon (rate-limited). */
  peerSuggestsKeyChange(): void
  /** A handshake went through without authentication (disabled): rate-limited WARN. */
  authSkipped(): void
}
