/**
 * `npm run bench:inspect`: the inspection commands against libguestfs's on one qcow2
 * image (bench/os-image.ts: GPT, vfat ESP, ext4 Debian-like root, xfs /srv with a
 * 200-file folder and a large file), then OS inspection of an rpm guest and a Windows
 * guest (bench/guest-images.ts), same accelerator (TCG), alternating, median of RUNS
 * after a warm-up each, and the ratio. Every run's output is checked, so a fast wrong
 * answer fails the benchmark instead of winning it. Needs root (the image is made on
 * loop devices) and libguestfs-tools (scripts/setup-host.sh).
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GUEST_PACKAGES, makeRpmImage, makeWindowsImage } from './guest-images.js';
import { makeOsImage } from './os-image.js';
import { LIBGUESTFS_ENV, run, seconds, type Sample } from './run.js';
import { median } from './stats.js';

const CLI = resolve('dist/src/bin.cjs');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 256);

interface Case {
  name: string;
  ours: (out: string) => [string, string[]];
  theirs: (out: string) => [string, string[]];
  /** Throws unless the run's stdout / output folder is right. */
  check: (sample: Sample, out: string, side: 'ours' | 'theirs') => void | Promise<void>;
}

const sha256 = (file: string) =>
  new Promise<string>((res, rej) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => res(h.digest('hex')))
      .on('error', rej);
  });

function expect(ok: boolean, what: string): void {
  if (!ok) throw new Error(`wrong result: ${what}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync('/tmp/appliance-bench-inspect-');
  try {
    console.log(`making the image (${BIG_MIB} MiB large file)…`);
    const img = makeOsImage(dir, BIG_MIB);
    const bigSha = await sha256Of(img.qcow2, img.bigFile);
    console.log(`making an rpm guest and a Windows guest (${GUEST_PACKAGES} packages each)…`);
    const rpm = await makeRpmImage(dir);
    const windows = await makeWindowsImage(dir);
    const node = process.execPath;
    const cases: Case[] = [
      {
        name: 'inspect, OS and packages',
        ours: () => [node, [CLI, 'inspect', '--packages', '--json', img.qcow2]],
        theirs: () => ['virt-inspector', ['-a', img.qcow2]],
        // Ours is JSON, virt-inspector's XML: both must name the hostname, deb, and the packages (bash among them).
        check: ({ stdout }) =>
          expect(
            stdout.includes(img.hostname) && /"packageFormat": "deb"|<package_format>deb</.test(stdout) && /"name": "bash"|<name>bash</.test(stdout),
            'inspect finds the OS, its hostname and its deb packages',
          ),
      },
      {
        name: 'ls -lR of one filesystem',
        ours: () => [node, [CLI, 'ls', '-lR', `${img.qcow2}:3`, '/']],
        theirs: () => ['virt-ls', ['-lR', '-a', img.qcow2, '-m', '/dev/sda3', '/']],
        check: ({ stdout }) => expect(stdout.split('\n').filter((l) => /\/data\/f\d+$/.test(l)).length === 200, 'ls -lR lists the 200 files'),
      },
      {
        name: 'cat of one file',
        ours: () => [node, [CLI, 'cat', img.qcow2, '/etc/hostname']],
        theirs: () => ['virt-cat', ['-a', img.qcow2, '/etc/hostname']],
        check: ({ stdout }) => expect(stdout === `${img.hostname}\n`, 'cat prints the hostname'),
      },
      {
        name: 'copy-out of a 200-file folder',
        ours: (out) => [node, [CLI, 'copy-out', img.qcow2, '/srv/data', out]],
        theirs: (out) => ['virt-copy-out', ['-a', img.qcow2, '/srv/data', out]],
        check: (_, out) => {
          const files = readdirSync(join(out, 'data'));
          expect(
            files.length === 200 && files.every((f) => statSync(join(out, 'data', f)).size === Number(f.slice(1)) * 100),
            'copy-out copies 200 files of their sizes',
          );
        },
      },
      {
        name: `copy-out of a ${BIG_MIB} MiB file`,
        ours: (out) => [node, [CLI, 'copy-out', img.qcow2, img.bigFile, out]],
        theirs: (out) => ['virt-copy-out', ['-a', img.qcow2, img.bigFile, out]],
        check: async (_, out) => expect((await sha256(join(out, 'big.bin'))) === bigSha, 'the large file arrives whole'),
      },
      {
        name: 'inspect --packages, rpm guest',
        ours: () => [node, [CLI, 'inspect', '--packages', '--json', rpm]],
        // libguestfs 1.48's librpm cannot list this database (rpm 4.18's sqlite: it fails in
        // rpmtsInitIterator after ~16 s), so it is timed without its applications: less work than ours.
        theirs: () => ['virt-inspector', ['--no-applications', '-a', rpm]],
        check: ({ stdout }, _, side) =>
          expect(
            /"distro": "rhel"|<distro>rhel</.test(stdout) && (side === 'theirs' || (stdout.match(/big0\d{3}/g) ?? []).length >= GUEST_PACKAGES),
            'inspect finds RHEL (and we list its rpm packages)',
          ),
      },
      {
        name: 'inspect --packages, Windows guest',
        ours: () => [node, [CLI, 'inspect', '--packages', '--json', windows]],
        theirs: () => ['virt-inspector', ['--format=raw', '-a', windows]],
        check: ({ stdout }) =>
          expect(/WIN-BENCH/.test(stdout) && (stdout.match(/Application \d+/g) ?? []).length >= GUEST_PACKAGES, 'inspect finds Windows and its applications'),
      },
    ];

    console.log(`${RUNS} runs each after a warm-up, alternating (TCG for both)`);
    const results = new Map<string, { ours: number; theirs: number }>();
    for (const c of cases) {
      const once = async (side: 'ours' | 'theirs'): Promise<Sample> => {
        const out = mkdtempSync(join(dir, 'out-'));
        try {
          const [cmd, args] = c[side](out);
          const sample = await run(cmd, args, side === 'theirs' ? LIBGUESTFS_ENV : process.env);
          await c.check(sample, out, side);
          return sample;
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      };
      await once('ours');
      await once('theirs');
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        // Alternate which goes first: a run leaves the page cache and CPU warm for the next.
        const [first, second] = i % 2 ? (['theirs', 'ours'] as const) : (['ours', 'theirs'] as const);
        const x = await once(first);
        const y = await once(second);
        (first === 'ours' ? a : b).push(x.ms);
        (second === 'ours' ? a : b).push(y.ms);
      }
      const ours = median(a);
      const theirs = median(b);
      results.set(c.name, { ours, theirs });
      console.log(
        `${c.name.padEnd(32)} ours ${seconds(ours)}  libguestfs ${seconds(theirs)}  ${(theirs / ours).toFixed(1)}x` +
          `   (ours: ${a.map(seconds).join(', ')}; libguestfs: ${b.map(seconds).join(', ')})`,
      );
    }
    const big = results.get(cases[4]!.name)!;
    const small = results.get(cases[2]!.name)!;
    console.log(
      `large-file copy-out: ${(BIG_MIB / (big.ours / 1000)).toFixed(0)} MiB/s end to end, ` +
        `${(BIG_MIB / ((big.ours - small.ours) / 1000)).toFixed(0)} MiB/s past the start-up a cat costs ` +
        `(libguestfs: ${(BIG_MIB / (big.theirs / 1000)).toFixed(0)} MiB/s end to end)`,
    );
    console.log(
      'targets: each call at most 1 s and at least 10x faster than libguestfs (OS inspection of the rpm and Windows guests: 20x); large files at least 50 MiB/s',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The large file's sha256, read with libguestfs: an oracle independent of ours. */
async function sha256Of(image: string, path: string): Promise<string> {
  const r = await run('guestfish', ['--ro', '-a', image, '-i', 'checksum', 'sha256', path], LIBGUESTFS_ENV);
  return r.stdout.trim();
}

await main();
