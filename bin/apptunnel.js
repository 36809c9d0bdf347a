#!/usr/bin/env node
// The CLI runs a bundle of the TypeScript sources (a running server or agent does not carry a
// TypeScript loader: about 50 MiB of RSS and a slower start), built by scripts/build.mjs when
// `npm install` or `npm pack` runs in a checkout. An installed copy only loads it and never writes
// next to itself; in a development checkout a bundle older than a source is rebuilt first, when
// whoever runs it can (see docs/decisions.md, 11 and 42).
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'apptunnel.mjs')
const build = join(root, 'scripts', 'build.mjs')

if (existsSync(join(root, 'src', 'cli', 'main.ts')) && existsSync(build)) {
  const { bundleIsStale, cannotBuild, buildBundle } = await import(pathToFileURL(build).href)
  if (bundleIsStale(root)) {
    const reason = await cannotBuild(root)
    if (reason === undefined) await buildBundle({ root })
    else if (existsSync(out)) process.stderr.write(`apptunnel: running the bundle in dist/, older than src/: ${reason}; \`npm run build\` rebuilds it\n`)
    else {
      process.stderr.write(`apptunnel: no bundle in ${join(root, 'dist')} and ${reason}: run \`npm install\` (or \`npm run build\`) in ${root} as a user who can write there\n`)
      process.exit(1)
    }
  }
} else if (!existsSync(out)) {
  process.stderr.write(`apptunnel: this copy has no bundle (${out}): install it from the package (\`npm pack\` in a checkout)\n`)
  process.exit(1)
}

await import(pathToFileURL(out).href)
