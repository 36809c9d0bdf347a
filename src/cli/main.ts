import { VERSION } from '../version.ts'
import { registerAdminCommands } from './admin-commands.ts'
import { registerAgentCommand } from './agent-start.ts'
import { AppCommand } from './app-command.ts'
import { registerClusterCommands } from './cluster-commands.ts'
import { registerCompletionCommand } from './completion.ts'
import { registerConfigCommands } from './config-commands.ts'
import { registerDemoCommand } from './demo.ts'
import { registerDoctorCommand } from './doctor-command.ts'
import { registerKeyCommands } from './key-commands.ts'
import { registerServerCommand } from './server-start.ts'
import { registerTokenCommands } from './token-commands.ts'
import { registerTunnelCommands } from './tunnel-commands.ts'

const program = new AppCommand()
program
  .name('apptunnel')
  .description('Self-hosted application tunnel: reach an app in a private network through an outbound TLS connection')
  .version(VERSION)
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2)
  })

registerServerCommand(program)
registerAgentCommand(program)
registerTunnelCommands(program)
registerTokenCommands(program)
registerKeyCommands(program)
registerClusterCommands(program)
registerConfigCommands(program)
registerDemoCommand(program)
registerDoctorCommand(program)
registerAdminCommands(program)
// Last: the completion script is generated from every command registered above.
registerCompletionCommand(program)

await program.parseAsync(process.argv)
