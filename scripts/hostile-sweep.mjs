#!/usr/bin/env node
// The hostile-image sweep: images of many formats (ext4, btrfs, xfs, vfat, exFAT, NTFS, squashfs,
// iso9660, GPT and MBR disks, qcow2) made with the real tools, corrupted with
// fixed seeds (bytes flipped in the metadata, ranges zeroed, truncations, a loop in the
// partition chain), each given to `inspect --json`, `ls -R`, `cat`, `copy-out` and `diff`
// (against the image before it was corrupted). For every run it checks what
// test/hostile/images.test.ts checks for a few: an exit status of 0, 1, 125 or 141 (never 2
// or 70), every stderr line ours and at most 300 characters, no stack, the image unchanged,
// nothing written outside the destination; and that nothing is silent: what `ls -R` could
// not read, `copy-out` and `diff` say too (exit 1). Then it prints a table.
//
//   node scripts/hostile-sweep.mjs --help      (its options; test/hostile/sweep.test.ts runs a few
//                                              variants with --json)
//
// Needs the project built (npm run build) and the host set up (scripts/setup-host.sh).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/src/bin.cjs');
const USAGE = `usage: node scripts/hostile-sweep.mjs [--seeds N] [--only ext4,vfat,…] [--cache-dir DIR] [--json]
  --seeds N        corruptions of each kind per format (default 3)
  --only LIST      these formats only, comma-separated (a name it does not know lists those it does)
  --cache-dir DIR  the appliance cache (default: the test suite's shared one)
  --json           the rows as JSON instead of a table`;
let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      seeds: { type: 'string', default: '3' },
      only: { type: 'string' },
      'cache-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  console.error(`hostile-sweep: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
const SEEDS = Number(opts.seeds);
if (!Number.isInteger(SEEDS) || SEEDS < 1) {
  console.error(`hostile-sweep: --seeds takes a whole number from 1, not "${opts.seeds}"\n${USAGE}`);
  process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), 'appliance-sweep-'));
const cacheDir = opts['cache-dir'] ?? join(tmpdir(), `appliance-test-cache-${process.getuid?.() ?? 'user'}`);

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The tree every image holds: nested folders, a few sizes, odd names, a symlink. */
function tree() {
  const dir = join(work, 'tree');
  rmSync(dir, { recursive: true, force: true });
  const files = { 'etc/motd': 'hello\n', 'home/user/notes.txt': 'notes\n'.repeat(200), 'data/big.bin': Buffer.alloc(300_000, 7), 'data/a b/c.txt': 'c\n' };
  for (let i = 0; i < 40; i++) files[`many/f${i}`] = `${i}\n`;
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
  return dir;
}

/** A disk with one partition (sfdisk's `table`) holding an ext4 of the tree. */
function partitioned(src, out, table) {
  MAKERS.ext4(src, `${out}.fs`);
  writeFileSync(out, '');
  sh('truncate', ['-s', '24M', out]);
  sh('sfdisk', ['-q', out], table);
  sh('dd', [`if=${out}.fs`, `of=${out}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
}

/** Each format's image of the tree, made without mounting anything. */
const MAKERS = {
  ext4: (src, out) => sh('mkfs.ext4', ['-q', '-d', src, out, '16M']),
  btrfs: (src, out) => {
    writeFileSync(out, '');
    sh('truncate', ['-s', '128M', out]);
    sh('mkfs.btrfs', ['-q', '--rootdir', src, out]);
  },
  xfs: (src, out) => {
    // A protofile (mkfs.xfs -p) lists the tree; xfs wants 300 MB at least.
    const lines = ['/', '0 0', 'd--755 0 0'];
    const walk = (d, depth) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.name.includes(' ')) continue;
        if (e.isDirectory()) {
          lines.push(`${' '.repeat(depth)}${e.name} d--755 0 0`);
          walk(p, depth + 1);
          lines.push(`${' '.repeat(depth)}$`);
        } else lines.push(`${' '.repeat(depth)}${e.name} ---644 0 0 ${p}`);
      }
    };
    walk(src, 1);
    lines.push('$');
    writeFileSync(join(work, 'proto'), `${lines.join('\n')}\n`);
    writeFileSync(out, '');
    sh('truncate', ['-s', '300M', out]);
    sh('mkfs.xfs', ['-q', '-p', join(work, 'proto'), out]);
  },
  vfat: (src, out) => {
    sh('mkfs.vfat', ['-C', out, String(16 * 1024)]);
    sh('mcopy', ['-s', '-i', out, ...readdirSync(src).map((n) => join(src, n)), '::/']);
  },
  squashfs: (src, out) => sh('mksquashfs', [src, out, '-quiet', '-noappend', '-no-progress']),
  iso9660: (src, out) => sh('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-o', out, src]),
  gpt: (src, out) => partitioned(src, out, 'label: gpt\nstart=2048, size=32768, type=linux\n'),
  mbr: (src, out) => partitioned(src, out, 'label: dos\nstart=2048, size=32768, type=83\n'),
  // ntfs-3g has no way to fill an image with folders without mounting it: the tree's files
  // go into its root, each by ntfscp, under its path with "/" made "_".
  ntfs: (src, out) => {
    writeFileSync(out, '');
    sh('truncate', ['-s', '16M', out]);
    sh('mkntfs', ['-q', '-F', '-f', out]);
    const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
    for (const f of walk(src)) sh('ntfscp', ['-q', out, f, f.slice(src.length + 1).replaceAll('/', '_')]);
  },
  // Empty: no tool fills an exFAT image without mounting it (its metadata is what is corrupted).
  exfat: (_src, out) => {
    writeFileSync(out, '');
    sh('truncate', ['-s', '16M', out]);
    sh('mkfs.exfat', [out]);
  },
  qcow2: (src, out) => {
    MAKERS.ext4(src, `${out}.fs`);
    sh('qemu-img', ['convert', '-O', 'qcow2', `${out}.fs`, out]);
  },
};

/** A small PRNG: the same seed gives the same corruption everywhere. */
function rng(seed) {
  let x = seed * 2654435761 || 1;
  return () => ((x = (x ^ (x << 13)) >>> 0), (x = (x ^ (x >>> 17)) >>> 0), (x = (x ^ (x << 5)) >>> 0), x / 2 ** 32);
}

/** Corruptions of an image file, by name. The metadata is near the start for every format here. */
const CORRUPT = {
  flips: (file, seed) => {
    const r = rng(seed);
    const size = statSync(file).size;
    const fd = openSync(file, 'r+');
    for (let i = 0; i < 64; i++) writeSync(fd, Buffer.from([Math.floor(r() * 256)]), 0, 1, Math.floor(r() * Math.min(size, 1 << 20)));
    closeSync(fd);
  },
  zeroed: (file, seed) => {
    const r = rng(seed);
    const size = statSync(file).size;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(4096), 0, 4096, Math.floor((r() * Math.min(size, 1 << 20)) / 4096) * 4096);
    closeSync(fd);
  },
  truncated: (file, seed) => {
    const size = statSync(file).size;
    const keep = Math.floor(size * (0.2 + 0.2 * (seed % 3)));
    const data = readFileSync(file).subarray(0, keep);
    writeFileSync(file, data);
  },
};

function run(args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args, '--cache-dir', cacheDir], { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 120_000 });
  return { status: r.status ?? `signal ${r.signal}`, stderr: r.stderr ?? '', ms: Math.round(performance.now() - t0) };
}

const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');

function judge(r) {
  const problems = [];
  if (![0, 1, 125, 141].includes(r.status)) problems.push(`exit ${r.status}`);
  for (const line of r.stderr.split('\n').filter(Boolean)) {
    if (!line.startsWith('appliance: ')) problems.push(`not ours: ${line.slice(0, 80)}`);
    if (line.length > 300) problems.push(`line of ${line.length}`);
    if (/internal error|    at |errno \d/.test(line)) problems.push(`bad line: ${line.slice(0, 120)}`);
  }
  if (r.ms > 30_000) problems.push(`${r.ms} ms`);
  return problems;
}

const formats = opts.only ? opts.only.split(',') : Object.keys(MAKERS);
const unknown = formats.filter((f) => !Object.hasOwn(MAKERS, f));
if (unknown.length) {
  console.error(`hostile-sweep: no format ${unknown.join(', ')}; it knows ${Object.keys(MAKERS).join(', ')}`);
  rmSync(work, { recursive: true, force: true });
  process.exit(2);
}
const src = tree();
const rows = [];
for (const format of formats) {
  const base = join(work, `${format}.img`);
  try {
    MAKERS[format](src, base);
  } catch (err) {
    rows.push({ variant: `${format} (not made)`, cells: [], problems: [`not made: ${String(err.message).split('\n')[0].slice(0, 120)}`] });
    continue;
  }
  for (const [name, corrupt] of Object.entries(CORRUPT)) {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const img = join(work, `${format}-${name}-${seed}.img`);
      copyFileSync(base, img);
      if (format === 'qcow2') (corrupt(`${base}.fs`, seed), sh('qemu-img', ['convert', '-O', 'qcow2', `${base}.fs`, img]), MAKERS.ext4(src, `${base}.fs`));
      else corrupt(img, seed);
      const before = sha(img);
      const dest = mkdtempSync(join(work, 'out-'));
      const runs = {
        inspect: run(['inspect', '--json', img]),
        'ls -R': run(['ls', '-R', img, '/']),
        cat: run(['cat', img, format === 'ntfs' ? '/etc_motd' : '/etc/motd']),
        'copy-out': run(['copy-out', img, '/', dest]),
        diff: run(['diff', base, img]),
      };
      const problems = Object.entries(runs).flatMap(([cmd, r]) => judge(r).map((p) => `${cmd}: ${p}`));
      for (const cmd of ['copy-out', 'diff'])
        if (runs['ls -R'].status === 1 && runs[cmd].status === 0) problems.push(`${cmd}: exit 0 where ls -R could not read everything`);
      if (sha(img) !== before) problems.push('the image changed');
      const outside = readdirSync(work).filter((n) => n.startsWith('pwned'));
      if (outside.length) problems.push(`written outside the destination: ${outside.join(', ')}`);
      rmSync(dest, { recursive: true, force: true });
      rmSync(img, { force: true });
      rows.push({
        variant: `${format} ${name} #${seed}`,
        statuses: Object.fromEntries(Object.entries(runs).map(([cmd, r]) => [cmd, r.status])),
        cells: Object.values(runs).map((r) => `${r.status} (${(r.ms / 1000).toFixed(1)}s)`),
        problems,
      });
      process.stderr.write(`${rows.at(-1).variant}: ${rows.at(-1).cells.join(' ')}${problems.length ? `  PROBLEMS: ${problems.join('; ')}` : ''}\n`);
    }
  }
}

if (opts.json) {
  console.log(JSON.stringify(rows));
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}
const header = ['variant', 'inspect --json', 'ls -R', 'cat', 'copy-out', 'diff', 'problems'];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows)
  console.log(`| ${r.variant} | ${[...r.cells, ...Array(5 - r.cells.length).fill('')].join(' | ')} | ${r.problems?.join('; ') || 'none'} |`);
const bad = rows.filter((r) => r.problems?.length).length;
console.log(`\n${rows.length} variants, ${rows.length * 5} runs; ${bad} variants with problems`);
rmSync(work, { recursive: true, force: true });
process.exitCode = bad ? 1 : 0;
