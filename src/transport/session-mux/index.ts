export { SessionMux, type SessionMuxOptions } from './session-mux.ts'
export { MAX_WINDOW_GROWTH_FACTOR, RelayStream, type RelayStreamHandlers } from './relay-stream.ts'
