// `npm run build`'s last step: the package's two entry points each made one file. Node loads
// ES modules one at a time, reading, parsing and linking each (~200 here): the library's took
// ~100 ms to import, which every test file of a suite pays (vitest gives each its own
// process), and the CLI's ~50 ms of every call (a call is ~0.4 s under TCG).
// - The library: dist/src/appliance.js, one ES module (the package's "exports"), from
//   dist/src/index.js: ~30 ms to import. Its dependencies stay outside, as npm installs them.
// - The CLI: dist/src/cli.cjs, from dist/src/cli.js (src/cli.ts), which the `appliance`
//   command (dist/src/bin.cjs, from src/bin.cts) runs with V8's code cache; CommonJS, so
//   that bin.cjs can compile it with a code cache (vm.Script). execa is loaded only to
//   compile: it stays outside (an ES module, loaded by import()).
// Whitespace and syntax are minified (a smaller file compiles faster; names stay, for the
// stacks of internal errors). The source maps lead to the TypeScript, whose text they hold.
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
      if (!text.includes(eager)) throw new Error(`${args.path}: commander no longer requires node:child_process as expected; review scripts/bundle.mjs`);
      const lazy = "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
      return { contents: text.replace(eager, lazy), loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  logLevel: 'warning',
};

await build({
  ...common,
  // Lines as written: an error a user's script leaves uncaught is printed by Node with the
  // line it was thrown from, and one minified line of the whole library is ~40 KB of text.
  minifyWhitespace: false,
  entryPoints: ['dist/src/index.js'],
  outfile: 'dist/src/appliance.js',
  format: 'esm',
  packages: 'external',
});

await build({
  ...common,
  entryPoints: ['dist/src/cli.js'],
  outfile: 'dist/src/cli.cjs',
  format: 'cjs',
  external: ['execa'],
  // ASCII only, so that bin.cjs can read it as Latin-1, with no UTF-8 decoding.
  charset: 'ascii',
  // The modules that find the package's own files from import.meta.url keep doing so.
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyChildProcess],
});
// The ES module it was made from is not the command; left, it would be a second, slower one.
for (const f of ['cli.js', 'cli.js.map', 'cli.d.ts']) rmSync(`dist/src/${f}`, { force: true });
