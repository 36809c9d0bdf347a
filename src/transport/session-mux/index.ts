export { SessionMux, type SessionMuxOptions } from './session-mux.ts'
export { RelayStream, type RelayStreamHandlers } from './relay-stream.ts'
