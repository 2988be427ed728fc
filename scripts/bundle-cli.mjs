// `npm run build`'s last step: the CLI (dist/src/cli.js) made one file. Node loads ES
// modules one at a time, and the CLI's ~100 cost ~50 ms of every call here (a call is
// ~1 s under TCG); bundled, it reaches qemu's spawn that much sooner. The library
// (dist/src/index.js) stays as modules. execa is loaded only to compile, cpio-stream only
// by tests: both stay outside. commander is CommonJS: the banner gives it `require`.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/src/cli.js'],
  outfile: 'dist/src/cli.js',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['execa', 'cpio-stream'],
  banner: { js: "import { createRequire as createRequireForCjs } from 'node:module'; const require = createRequireForCjs(import.meta.url);" },
  sourcemap: true,
  logLevel: 'warning',
});
