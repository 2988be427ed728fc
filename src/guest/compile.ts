import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureCacheRoot } from '../cache/dir.js';
import { layout } from '../cache/layout.js';
import { readRecord, writeRecord } from '../cache/records.js';
import { publish } from '../cache/temp.js';
import { ApplianceError } from '../errors.js';
import { importExternal } from '../external.js';
import { sha256File } from '../files.js';
import { executableSearchPath, findExecutable } from '../host/which.js';
import { contractHeader } from './contract-header.js';

/**
 * execa, loaded when something is compiled: importing it is ~140 ms here, most of what
 * `import 'appliance'` costs, and a cached appliance (every call but the first) never needs it.
 */
const loadExeca = () => importExternal<typeof import('execa')>('execa');

export interface GuestPrograms {
  /** The static init for the initramfs. */
  init: string;
  /** The static guest agent for the root image. */
  agent: string;
  /** The inspect helper for the root image (src/inspect runs it). */
  inspect: string;
  /** Hash of the sources, the compiler's identity and the flags: names the cache folder. */
  hash: string;
  /** The compiler that built them. */
  compiler: string;
}

/**
 * The C sources. They are not compiled by tsc nor copied to dist/, so they are found
 * from the package root (the first folder above this module with a package.json),
 * which works from src/ and from dist/src/ alike.
 */
export const INIT_SOURCE_DIR: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return join(dir, 'src', 'guest', 'c');
})();

/** Each program's C files, from INIT_SOURCE_DIR: the init is one file, each daemon a folder of them (one a concern). */
const PROGRAMS: Record<'init' | 'agent' | 'inspect', (sources: string[]) => string[]> = {
  init: () => ['init.c'],
  agent: (sources) => sources.filter((n) => n.startsWith('agent/') && n.endsWith('.c')),
  inspect: (sources) => sources.filter((n) => n.startsWith('inspect/') && n.endsWith('.c')),
};
/** The header rendered from contract.ts that the sources include. */
const CONTRACT_HEADER = 'contract.h';

/** Preferred first: musl makes binaries a tenth of glibc's static size. */
const COMPILERS = ['musl-gcc', 'gcc'];

/**
 * Flags, part of the hash. -s drops the symbols and the debug info that would name
 * the build's folders; the prefix map covers anything else that would.
 */
const flags = (srcDir: string) => ['-static', '-Os', '-s', '-Wall', '-Wextra', `-ffile-prefix-map=${srcDir}=.`];

/** What identifies a compiler's output besides the flags, and the files it was read from. */
interface CompilerIdentity {
  stamps: Record<string, string>;
  identity: string;
}

/**
 * Builds the static init and agent once per (sources, contract, compiler, flags) and
 * caches them in `<cache>/init/<hash>/`, beside the contract.h they were built with. A
 * cache hit reads the sources and stats a few files: the compiler's identity is
 * remembered, keyed by the stat of its files, so it does not run. Concurrent callers may
 * build at once; each builds in a private folder and the first to finish is kept.
 */
export async function buildGuestPrograms(opts: { cacheDir?: string } = {}): Promise<GuestPrograms> {
  const cacheDir = opts.cacheDir ?? (await ensureCacheRoot());
  const compiler = findCompiler();
  const [sources, cc] = await Promise.all([readSources(), compilerIdentity(cacheDir, compiler)]);
  const header = contractHeader();
  const hash = createHash('sha256');
  hash.update(`appliance-init\0${cc.identity}\0${flags('.').join(' ')}\0`);
  for (const [name, text] of [...sources, [CONTRACT_HEADER, Buffer.from(header)] as const]) hash.update(`${name}\0${text.length}\0`).update(text);
  const digest = hash.digest('hex').slice(0, 32);
  const dir = join(layout.init(cacheDir), digest);
  const result = { init: join(dir, 'init'), agent: join(dir, 'agent'), inspect: join(dir, 'inspect'), hash: digest, compiler };
  if (existsSync(dir)) return result;

  await mkdir(layout.init(cacheDir), { recursive: true, mode: 0o700 });
  await publish(cacheDir, `init-${digest}`, dir, async (tmp) => {
    await mkdir(tmp, { mode: 0o700 });
    await writeFile(join(tmp, CONTRACT_HEADER), header);
    const names = sources.map(([name]) => name);
    await Promise.all(Object.entries(PROGRAMS).map(([program, files]) => compile(compiler, program, files(names), tmp)));
  });
  return result;
}

function findCompiler(): string {
  const dirs = executableSearchPath();
  for (const name of COMPILERS) {
    const path = findExecutable(name, dirs);
    if (path) return path;
  }
  throw new ApplianceError(
    'ENOCOMPILER',
    'no C compiler to build the appliance init and agent (looked for musl-gcc and gcc): ' + 'install musl-tools (apt-get install musl-tools)',
  );
}

/** Every .c and .h below INIT_SOURCE_DIR, by path from it, in byte order. */
export function guestSourceNames(): string[] {
  return (readdirSync(INIT_SOURCE_DIR, { recursive: true }) as string[]).filter((n) => /\.[ch]$/.test(n)).sort();
}

async function readSources(): Promise<[string, Buffer][]> {
  const names = guestSourceNames();
  return Promise.all(names.map(async (n) => [n, await readFile(join(INIT_SOURCE_DIR, n))] as [string, Buffer]));
}

async function stampOf(path: string): Promise<string> {
  const st = await stat(path).catch(() => undefined);
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : 'missing';
}

/**
 * The compiler's `--version` and a hash of the C library it links in statically, read
 * from a record while the stats of the driver, cc1 and libc.a are unchanged.
 */
async function compilerIdentity(cacheDir: string, compiler: string): Promise<CompilerIdentity> {
  const recordId = `init-cc-${createHash('sha256').update(compiler).digest('hex').slice(0, 16)}`;
  const known = await readRecord<CompilerIdentity>(cacheDir, recordId);
  if (known?.stamps && typeof known.identity === 'string') {
    const paths = Object.keys(known.stamps);
    const now = await Promise.all(paths.map(stampOf));
    if (paths.length > 0 && paths.every((p, i) => known.stamps[p] === now[i])) return known;
  }
  const { execa } = await loadExeca();
  const run = async (args: string[]) =>
    (
      await execa(compiler, args, { stdin: 'ignore' }).catch((err: { stderr?: string; shortMessage?: string }) => {
        // musl-gcc is a wrapper around gcc: installed without it, it is found but cannot run.
        const why = err.stderr?.trim().split('\n').at(-1) || err.shortMessage;
        throw new ApplianceError('ENOCOMPILER', `the C compiler ${compiler} does not run (${why}): install a working one (apt-get install musl-tools gcc)`, {
          cause: err,
        });
      })
    ).stdout.trim();
  const [version, libc, cc1] = await Promise.all([run(['--version']), run(['-print-file-name=libc.a']), run(['-print-prog-name=cc1'])]);
  const files = [await realpath(compiler), ...[libc, cc1].filter((p) => p.startsWith('/') && existsSync(p))];
  const libcHash = libc.startsWith('/') && existsSync(libc) ? await sha256File(libc) : 'none';
  const stamps: Record<string, string> = {};
  for (const f of files) stamps[f] = await stampOf(f);
  const identity: CompilerIdentity = { stamps, identity: `${version}\nlibc.a ${libcHash}` };
  await writeRecord(cacheDir, recordId, identity);
  return identity;
}

/** Compiles `program` from its `sources` (paths from INIT_SOURCE_DIR) into `dir`, which holds the generated contract.h. */
async function compile(compiler: string, program: string, sources: string[], dir: string): Promise<void> {
  const source = sources.length === 1 ? join(INIT_SOURCE_DIR, sources[0]!) : join(INIT_SOURCE_DIR, program);
  const { execa } = await loadExeca();
  const res = await execa(compiler, [...flags(INIT_SOURCE_DIR), `-iquote${dir}`, '-o', join(dir, program), ...sources], {
    cwd: INIT_SOURCE_DIR,
    stdin: 'ignore',
    reject: false,
    all: true,
  });
  if (res.exitCode === 0) return;
  const staticLibMissing = /cannot find -lc|crt1\.o|No such file.*\.h/.test(res.all ?? '');
  throw new ApplianceError(
    'EINITBUILD',
    `cannot build the appliance ${program} from ${source} with ${compiler}` +
      (staticLibMissing ? ': the static C library is missing; install musl-tools (apt-get install musl-tools)' : '') +
      `:\n${res.all ?? ''}`,
  );
}
