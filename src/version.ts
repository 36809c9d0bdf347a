/** The version of this build of apptunnel (server, agent and CLI are released together). */
export const VERSION = '0.1.0'
