// The bundle's entry point. Before any of the CLI's code loads, it holds V8's young generation at
// its start size (decision 49): loading it is the first burst of start-up garbage, and the modules a
// static import brings are evaluated before the importing module's own code. It also turns V8's
// incremental marking off here (decisions 53 and 54), while no marking can be under way: turned off
// in a running process, a marking cycle already started hit V8's "unreachable code" and killed the
// process (seen in the agent, once in a few starts).
import { fullCollectionsAtTheLimitOnly } from './incremental-marking.ts'
import { holdYoungGenerationWhileStarting } from './young-generation.ts'

holdYoungGenerationWhileStarting()
fullCollectionsAtTheLimitOnly()
await import('./main.ts')
