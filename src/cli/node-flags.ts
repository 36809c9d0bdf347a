/** The Node flags this process was started with: on its command line and in NODE_OPTIONS. */
export interface NodeFlags {
  execArgv: readonly string[]
  nodeOptions: string | undefined
}

export const THIS_PROCESS_FLAGS: NodeFlags = { execArgv: process.execArgv, nodeOptions: process.env.NODE_OPTIONS }

/**
 * Whether the operator gave a Node flag matching `flag`: where they chose a V8 setting themselves,
 * the process leaves it to them (decisions 49 and 53).
 */
export function operatorChose(flag: RegExp, nodeFlags: NodeFlags): boolean {
  return nodeFlags.execArgv.some((a) => flag.test(a)) || flag.test(nodeFlags.nodeOptions ?? '')
}
