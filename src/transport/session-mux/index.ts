export { SessionMux, type SessionInput, type SessionMuxOptions } from './session-mux.ts'
export { releaseReceived } from './receive-slabs.ts'
export { MAX_WINDOW_GROWTH_FACTOR, RelayStream, type RelayStreamHandlers } from './relay-stream.ts'
