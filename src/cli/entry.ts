// The bundle's entry point. It holds V8's young generation at its start size before any of the
// CLI's code loads (decision 49): loading it is the first burst of start-up garbage, and the
// modules a static import brings are evaluated before the importing module's own code.
import { holdYoungGenerationWhileStarting } from './young-generation.ts'

holdYoungGenerationWhileStarting()
await import('./main.ts')
