// `npm run build`'s last step: the CLI (dist/src/cli.js, from src/cli.ts) made one CommonJS
// file, dist/src/cli.cjs, which the `appliance` command (dist/src/bin.cjs, from src/bin.cts)
// runs with V8's code cache. Node loads ES modules one at a time, and the CLI's ~100 cost
// ~50 ms of every call here (a call is ~1 s under TCG); bundled, it reaches qemu's spawn
// that much sooner; CommonJS, so that bin.cjs can compile it with a code cache (vm.Script).
// Whitespace and syntax are minified (a smaller file compiles faster; names stay, for the
// stacks of internal errors). The library (dist/src/index.js) stays as ES modules. execa is
// loaded only to compile: it stays outside (an ES module, loaded by import()).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

/**
 * commander requires node:child_process at its top, for subcommands that are programs of
 * their own, which ours never are; loading it (and node:net with it) cost ~8 ms of every
 * call. It is required when first used instead.
 */
const lazyChildProcess = {
  name: 'commander-lazy-child-process',
  setup(b) {
    b.onLoad({ filter: /commander[\\/]lib[\\/]command\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const eager = "const childProcess = require('node:child_process');";
      if (!text.includes(eager)) throw new Error(`${args.path}: commander no longer requires node:child_process as expected; review bundle-cli.mjs`);
      const lazy = "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
      return { contents: text.replace(eager, lazy), loader: 'js' };
    });
  },
};

await build({
  entryPoints: ['dist/src/cli.js'],
  outfile: 'dist/src/cli.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['execa'],
  // ASCII only, so that bin.cjs can read it as Latin-1, with no UTF-8 decoding.
  charset: 'ascii',
  minifyWhitespace: true,
  minifySyntax: true,
  // The modules that find the package's own files from import.meta.url keep doing so.
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  sourcemap: true,
  plugins: [lazyChildProcess],
  logLevel: 'warning',
});
// The ES module it was made from is not the command; left, it would be a second, slower one.
for (const f of ['cli.js', 'cli.js.map', 'cli.d.ts']) rmSync(`dist/src/${f}`, { force: true });
