import type { Command } from 'commander'

function int(v: string): number {
  return Number(v)
}

/** The cluster bus flags, shared by `apptunnel server` and `apptunnel agent`. */
export function addClusterOptions(cmd: Command): Command {
  return cmd
    .option('--cluster-listen <host:port>', 'run as a cluster node: cluster bus listener (nodes share --database)')
    .option('--cluster-advertise <host:port>', 'address other nodes dial to reach this one (default: the listen address)')
    .option('--cluster-auth-disabled', 'TROUBLESHOOTING ONLY: skip cluster authentication (set on every node)')
    .option('--cluster-auth-timeout-ms <ms>', 'deadline of a cluster handshake (default 10000)', int)
    .option('--cluster-auth-warn-interval-ms <ms>', 'the "authentication disabled" WARN repeats at most this often (default 60000)', int)
    .option('--cluster-key-poll-ms <ms>', 'how often the cluster key row is re-read (default 60000)', int)
    .option('--cluster-key-grace-ms <ms>', 'how long the previous cluster key stays accepted after a rotation (default 150000)', int)
    .option('--cluster-stats-interval-ms <ms>', 'interval of the [APPTUNNEL-STATS] [CLUSTER-AUTH] lines (default 300000)', int)
    .option('--cluster-heartbeat-ms <ms>', 'membership heartbeat (default 5000)', int)
}
