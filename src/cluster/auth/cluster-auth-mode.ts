/**
 * - `enabled`: a key is loaded; every handshake must prove it (fail closed).
 * - `disabled-at-start`: `--cluster-auth-disabled`; no key is ever read, handshakes are skipped.
 * - `disabled-at-run-time`: the key row holds an empty value; handshakes are skipped, with a WARN.
 * - `no-key`: nothing loaded yet; every handshake is refused.
 */
export type ClusterAuthMode = 'enabled' | 'disabled-at-start' | 'disabled-at-run-time' | 'no-key'
