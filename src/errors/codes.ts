/**
 * The registry of every error code apptunnel emits. A code is never reused once retired;
 * docs/errors.md lists each one (a test keeps the two in step).
 */
export const errorCatalog = {
  TUN_ERR_INTERNAL: { httpStatus: 500, retryable: true, message: 'internal error' },
  TUN_ERR_CONFIG_INVALID: { httpStatus: 400, retryable: false, message: 'configuration is invalid' },

  TUN_ERR_KEY_MALFORMED: { httpStatus: 400, retryable: false, message: 'security key is malformed' },
  TUN_ERR_KEY_SEALED: { httpStatus: 409, retryable: false, message: 'the stored security key cannot be decrypted on this node' },
  TUN_ERR_KEY_REJECTED: { httpStatus: 401, retryable: false, message: 'security key was rejected by the server' },

  TUN_ERR_AUTH_TOKEN_MISSING: { httpStatus: 401, retryable: false, message: 'an API token is required (Authorization: Bearer …)' },
  TUN_ERR_AUTH_TOKEN_INVALID: { httpStatus: 401, retryable: false, message: 'the API token is not valid' },
  TUN_ERR_AUTH_RATE_LIMITED: { httpStatus: 429, retryable: true, message: 'too many failed API authentications from this address' },
  TUN_ERR_TOKEN_NOT_FOUND: { httpStatus: 404, retryable: false, message: 'API token not found' },
  TUN_ERR_TOKEN_NAME_INVALID: { httpStatus: 400, retryable: false, message: 'API token name is invalid or already used' },
  TUN_ERR_TOKEN_LAST: { httpStatus: 409, retryable: false, message: "the organization's last API token cannot be revoked" },

  TUN_ERR_CONSOLE_LOGIN_FAILED: { httpStatus: 401, retryable: false, message: 'the user name or password is wrong' },
  TUN_ERR_CONSOLE_LOGIN_RATE_LIMITED: { httpStatus: 429, retryable: true, message: 'too many failed sign-ins: wait a while before trying again' },
  TUN_ERR_CONSOLE_SESSION_REQUIRED: { httpStatus: 401, retryable: false, message: 'sign in first: there is no console session or it has expired' },
  TUN_ERR_CONSOLE_CROSS_SITE: { httpStatus: 403, retryable: false, message: 'cross-site request refused (missing or wrong CSRF token or Origin)' },
  TUN_ERR_CONSOLE_PASSWORD_INVALID: { httpStatus: 400, retryable: false, message: 'the new password is not acceptable' },

  TUN_ERR_API_BAD_REQUEST: { httpStatus: 400, retryable: false, message: 'the request is not valid' },
  TUN_ERR_API_ROUTE_NOT_FOUND: { httpStatus: 404, retryable: false, message: 'no such API route' },
  TUN_ERR_API_METHOD_NOT_ALLOWED: { httpStatus: 405, retryable: false, message: 'method not allowed on this route' },
  TUN_ERR_API_BODY_TOO_LARGE: { httpStatus: 413, retryable: false, message: 'request body is too large' },

  TUN_ERR_TUNNEL_NOT_FOUND: { httpStatus: 404, retryable: false, message: 'tunnel not found' },
  TUN_ERR_TUNNEL_LIMIT_REACHED: { httpStatus: 409, retryable: false, message: 'the organization already has the maximum number of tunnels' },
  TUN_ERR_TUNNEL_NAME_TAKEN: { httpStatus: 409, retryable: false, message: 'a tunnel with this name already exists in the organization' },
  TUN_ERR_TUNNEL_NAME_INVALID: { httpStatus: 400, retryable: false, message: 'tunnel name is invalid' },
  TUN_ERR_TUNNEL_URL_INVALID: { httpStatus: 400, retryable: false, message: 'instance URL is invalid' },

  TUN_ERR_HANDSHAKE_VERSION: { httpStatus: 426, retryable: false, message: 'agent protocol version is not supported' },
  TUN_ERR_HANDSHAKE_BAD_REQUEST: { httpStatus: 400, retryable: false, message: 'agent connect request is malformed' },
  TUN_ERR_HANDSHAKE_RATE_LIMITED: { httpStatus: 429, retryable: true, message: 'too many failed agent authentications from this address' },
  TUN_ERR_SERVER_UNAVAILABLE: { httpStatus: 503, retryable: true, message: 'the tunnel server cannot take sessions now' },
  TUN_ERR_SERVER_UNREACHABLE: { httpStatus: 503, retryable: true, message: 'the tunnel server cannot be reached' },
  TUN_ERR_SERVER_WORKER_FAILED: { httpStatus: 500, retryable: true, message: 'a server worker exited before it was ready' },
  TUN_ERR_TLS_CERT_MISMATCH: { httpStatus: 502, retryable: true, message: 'certificate mismatch: the server certificate does not match the pin in the key' },
  TUN_ERR_SESSION_LIMIT: { httpStatus: 429, retryable: true, message: 'the tunnel already has as many agent sessions as the server accepts' },
  TUN_ERR_SESSION_PROTOCOL: { httpStatus: 502, retryable: true, message: 'the peer broke the agent session protocol' },
  TUN_ERR_SESSION_LOST: { httpStatus: 502, retryable: true, message: 'the tunnel session was lost before the response started' },
  TUN_ERR_SESSION_PING_TIMEOUT: { httpStatus: 502, retryable: true, message: 'the peer stopped answering keepalive pings' },
  // An agent's HTTP CONNECT proxy (src/transport/proxy-connect.ts). A 407 cannot pass on retry with the same
  // credentials, and retrying fast could lock the proxy account; the connector shows it as UNAVAILABLE.
  TUN_ERR_PROXY_AUTH_REQUIRED: { httpStatus: 502, retryable: false, message: 'the proxy requires a user and password, or refused the ones given (407)' },
  TUN_ERR_PROXY_REFUSED: { httpStatus: 502, retryable: true, message: 'the proxy refused to open a tunnel to the server' },

  TUN_ERR_INGRESS_UNKNOWN_TUNNEL: { httpStatus: 404, retryable: false, message: 'no tunnel answers at this host' },
  TUN_ERR_INGRESS_NO_SESSION: { httpStatus: 503, retryable: true, message: 'the tunnel has no live agent session' },
  TUN_ERR_INGRESS_FORBIDDEN: { httpStatus: 403, retryable: false, message: 'this caller is not allowed to use the tunnel' },
  TUN_ERR_INGRESS_MISDIRECTED: { httpStatus: 421, retryable: false, message: 'request host names another tunnel than this connection carries' },
  TUN_ERR_INGRESS_STREAM_LIMIT: { httpStatus: 503, retryable: true, message: 'the tunnel has too many concurrent connections' },
  // 429, not 503: the refusal is about this caller's own connections; the tunnel itself is healthy.
  TUN_ERR_INGRESS_SOURCE_LIMIT: { httpStatus: 429, retryable: true, message: 'this source address already holds as many connections to the tunnel as one source may' },
  TUN_ERR_UPSTREAM_REFUSED: { httpStatus: 502, retryable: true, message: 'the upstream port refused the connection' },
  TUN_ERR_UPSTREAM_FAILED: { httpStatus: 502, retryable: true, message: 'the upstream closed the connection before answering' },
  TUN_ERR_UPSTREAM_TIMEOUT: { httpStatus: 504, retryable: true, message: 'the upstream did not answer in time' },
  TUN_ERR_UPSTREAM_BAD_RESPONSE: { httpStatus: 502, retryable: false, message: 'the upstream sent a malformed HTTP response' },

  TUN_ERR_HTTP_BAD_REQUEST: { httpStatus: 400, retryable: false, message: 'malformed HTTP request' },
  TUN_ERR_HTTP_AMBIGUOUS_FRAMING: { httpStatus: 400, retryable: false, message: 'request framing is ambiguous (possible request smuggling)' },
  TUN_ERR_HTTP_HEADERS_TOO_LARGE: { httpStatus: 431, retryable: false, message: 'request header fields are too large' },
  TUN_ERR_HTTP_URI_TOO_LONG: { httpStatus: 414, retryable: false, message: 'request line is too long' },
  TUN_ERR_HTTP_NOT_IMPLEMENTED: { httpStatus: 501, retryable: false, message: 'transfer coding is not supported' },
  TUN_ERR_HTTP_VERSION: { httpStatus: 505, retryable: false, message: 'HTTP version is not supported' },
  TUN_ERR_HTTP_REQUEST_TIMEOUT: { httpStatus: 408, retryable: false, message: 'the request head was not received in time' },

  // Cluster bus (src/cluster/): node-to-node authentication, framing and membership.
  TUN_ERR_CLUSTER_AUTH_PROTOCOL: { httpStatus: 400, retryable: false, message: 'a cluster peer broke the authentication protocol' },
  TUN_ERR_CLUSTER_AUTH_VERSION: { httpStatus: 426, retryable: false, message: 'the cluster peers share no protocol version' },
  TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY: { httpStatus: 401, retryable: true, message: 'the cluster peer used a key this node does not accept' },
  TUN_ERR_CLUSTER_AUTH_BAD_PROOF: { httpStatus: 401, retryable: false, message: 'the cluster peer failed to prove it holds the cluster key' },
  TUN_ERR_CLUSTER_AUTH_REQUIRED: { httpStatus: 401, retryable: true, message: 'the cluster peer has no cluster key, but this node requires authentication' },
  TUN_ERR_CLUSTER_AUTH_REFLECTION: { httpStatus: 401, retryable: false, message: 'the cluster peer reflected this node\'s own nonce or identity' },
  TUN_ERR_CLUSTER_AUTH_WRONG_PEER: { httpStatus: 409, retryable: true, message: 'a different cluster node answered at this address' },
  TUN_ERR_CLUSTER_AUTH_SELF_CONNECTION: { httpStatus: 409, retryable: false, message: 'the address leads back to this cluster node itself' },
  TUN_ERR_CLUSTER_AUTH_TIMEOUT: { httpStatus: 504, retryable: true, message: 'cluster authentication did not finish in time' },
  TUN_ERR_CLUSTER_AUTH_DISABLED: { httpStatus: 401, retryable: false, message: 'cluster authentication was skipped: it is disabled' },
  TUN_ERR_CLUSTER_BUSY: { httpStatus: 503, retryable: true, message: 'the cluster node has too many authentications in progress' },
  TUN_ERR_CLUSTER_FRAME_TOO_LARGE: { httpStatus: 413, retryable: false, message: 'a cluster frame is larger than allowed' },
  TUN_ERR_CLUSTER_BUS_PROTOCOL: { httpStatus: 400, retryable: false, message: 'a cluster peer sent a malformed bus message' },
  TUN_ERR_CLUSTER_BUS_INTEGRITY: { httpStatus: 400, retryable: true, message: 'a cluster bus frame failed its integrity check (altered, injected, replayed or reflected)' },
  TUN_ERR_CLUSTER_CONNECTION_LOST: { httpStatus: 502, retryable: true, message: 'the cluster connection closed' },
  TUN_ERR_CLUSTER_UNREACHABLE: { httpStatus: 503, retryable: true, message: 'the cluster node cannot be reached' },
  TUN_ERR_CLUSTER_KEY_UNAVAILABLE: { httpStatus: 503, retryable: true, message: 'no cluster key is available yet' },
  TUN_ERR_CLUSTER_NODE_ID_TAKEN: { httpStatus: 409, retryable: false, message: 'another live cluster node already uses this node id' },

  TUN_ERR_PRODUCT_NOT_FOUND: { httpStatus: 404, retryable: false, message: 'no linked product with this id on this tunnel' },
  TUN_ERR_PRODUCT_INVALID: { httpStatus: 400, retryable: false, message: 'the linked product is invalid' },

  TUN_ERR_INSTANCE_HAS_KEY: { httpStatus: 409, retryable: false, message: 'this instance already has a security key: remove it before adding another' },
  TUN_ERR_INSTANCE_NO_KEY: { httpStatus: 404, retryable: false, message: 'this instance has no security key' },
  TUN_ERR_INSTANCE_NODE_UNKNOWN: { httpStatus: 404, retryable: false, message: 'no node with this id is registered in the instance' },
  TUN_ERR_INSTANCE_NODE_ONLINE: { httpStatus: 409, retryable: false, message: 'the node is still running: stop it before removing it' },

  TUN_ERR_STORE_MIGRATION_FAILED: { httpStatus: 500, retryable: false, message: 'database migration failed' },
  TUN_ERR_STORE_UNREACHABLE: { httpStatus: 503, retryable: true, message: 'the database cannot be reached' },
  // Retryable: nothing was written, and the same request succeeds once space is freed.
  TUN_ERR_STORE_DISK_FULL: { httpStatus: 507, retryable: true, message: 'the disk holding the database is full' },
  TUN_ERR_STORE_CORRUPT: { httpStatus: 500, retryable: false, message: 'the database file is damaged: restore it from a backup' },
  TUN_ERR_CLI_USAGE: { httpStatus: 400, retryable: false, message: 'invalid command usage' },
} as const satisfies Record<string, { httpStatus: number; retryable: boolean; message: string }>

export type ErrorCode = keyof typeof errorCatalog
