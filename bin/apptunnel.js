#!/usr/bin/env node
// The CLI runs a bundle of the TypeScript sources, rebuilt with esbuild (tens of milliseconds)
// whenever a source file is newer than it: a clone still needs no build step, and a running server
// or agent does not carry a TypeScript loader (about 50 MiB of RSS and a slower start; see
// docs/decisions.md).
import { readdirSync, renameSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const entry = join(root, 'src', 'cli', 'main.ts')
const out = join(root, 'dist', 'apptunnel.mjs')

function newestSource(dir) {
  let newest = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

function bundleMtime() {
  try {
    return statSync(out).mtimeMs
  } catch {
    return -1
  }
}

if (bundleMtime() < newestSource(join(root, 'src'))) {
  const { build } = await import('esbuild')
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Pure-JS dependencies are bundled too (one file parses far faster than zod's hundreds of modules);
    // native or optional-native drivers stay real packages.
    external: ['better-sqlite3', 'pg', 'pg-native', 'esbuild'],
    write: false,
    logLevel: 'error',
    // Bundled CommonJS dependencies call require() for Node built-ins; give the ES module one.
    banner: { js: "import { createRequire as __apptunnelCreateRequire } from 'node:module'; const require = __apptunnelCreateRequire(import.meta.url);" },
  })
  mkdirSync(dirname(out), { recursive: true })
  // Several processes may start at once (a cluster on one host, tests): each writes its own file
  // and renames it into place, so none ever imports a half-written bundle.
  const tmp = `${out}.${process.pid}.tmp`
  writeFileSync(tmp, result.outputFiles[0].contents)
  renameSync(tmp, out)
}

await import(pathToFileURL(out).href)
