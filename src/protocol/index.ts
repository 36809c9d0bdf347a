export * from './security-key.ts'
export * from './agent-handshake.ts'
export * from './control-message.ts'
