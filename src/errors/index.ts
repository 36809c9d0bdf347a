export { errorCatalog, type ErrorCode } from './codes.ts'
export { TunnelError, isTunnelError } from './tunnel-error.ts'
