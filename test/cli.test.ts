// The CLI's usage errors, whoever finds them (commander or our option checks): exit
// status 2, one line on stderr naming the mistake and the --help to read, nothing on stdout.
import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = resolve('dist/src/bin.cjs');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('usage errors', () => {
  it.each([
    [['boot', '--frobnicate'], /^appliance: unknown option '--frobnicate' \(see appliance boot --help\)\n$/],
    [['boot', '--memory'], /^appliance: option '--memory <MB>' argument missing \(see appliance boot --help\)\n$/],
    [['nosuch'], /^appliance: unknown command 'nosuch' \(see appliance --help\)\n$/],
    [['cache', 'lss'], /^appliance: unknown command 'lss' \(Did you mean ls\?\) \(see appliance cache --help\)\n$/],
    [['mkext2', 'only-one-argument'], /^appliance: missing required argument 'output' \(see appliance mkext2 --help\)\n$/],
    [['boot', '--cpus', 'lots', '--', 'true'], /^appliance: --cpus "lots": give a positive number\n$/],
    [['boot', '--cpus', '0.5', '--', 'true'], /^appliance: --cpus "0.5": give a whole number\n$/],
    [['boot', '--memory', '300.5', '--', 'true'], /^appliance: --memory "300.5": give a whole number\n$/],
    [['mkext2', '/tmp', '/tmp/x.img', '--size', '12q'], /^appliance: bad size "12q"/],
    [['boot', '--disk', 'x.img,format=floppy', '--', 'true'], /^appliance: --disk "x.img,format=floppy": unknown option/],
  ])('%j exits 2 with one line', (args, message) => {
    const r = cli(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a reader that closes our stdout early gets no EPIPE stack trace: we stop as SIGPIPE would (141)', () => {
    // `true` exits without reading, long before node has started: the first write meets a closed pipe.
    const r = spawnSync('bash', ['-c', `${process.execPath} ${CLI} cache ls --cache-dir "$(mktemp -d)/c" | true; echo "status=\${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('status=141');
  });

  it('--help and --version exit 0 on stdout', () => {
    for (const args of [['--help'], ['boot', '--help'], ['cache', 'ls', '--help'], ['--version']]) {
      const r = cli(...args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout.length, args.join(' ')).toBeGreaterThan(0);
      expect(r.stderr).toBe('');
    }
  });
});

describe('problem lines', () => {
  it('are at most 300 characters, a long path cut in its middle so that the image and the reason stay', async () => {
    const { bounded } = await import('../src/cli/common.js');
    const path = `/boot/${'a'.repeat(250)}/${'b'.repeat(250)}`;
    const line = bounded(`appliance: os.img: ${path}: ENOENT: no such file or folder (/${'a'.repeat(250)}/${'b'.repeat(250)} on disk0:2)`);
    expect(line.length).toBeLessThanOrEqual(300);
    expect(line).toMatch(/^appliance: os\.img: \/boot\/a+…b+: ENOENT: no such file or folder \(\/a+…b+ on disk0:2\)$/);
    expect(bounded('appliance: short: EIO: input/output error')).toBe('appliance: short: EIO: input/output error');
    // Nothing long to cut: the line's own middle goes.
    expect(bounded(Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ')).length).toBeLessThanOrEqual(300);
  });
  it('from the command line: a missing path 600 bytes long', () => {
    const r = cli('cat', '/nonexistent.img', `/${'x'.repeat(600)}`);
    expect(r.status).toBe(125);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.trimEnd().length).toBeLessThanOrEqual(300);
  });
});

describe('ls -l times', () => {
  it('are local time, as GNU ls and virt-ls print them ("%F %T"); one a Date cannot hold (a hostile inode\'s), its seconds', async () => {
    const { timeText } = await import('../src/cli/inspect/format.js');
    const tz = process.env.TZ;
    try {
      for (const zone of ['UTC', 'Asia/Kolkata', 'America/St_Johns']) {
        process.env.TZ = zone;
        for (const t of [0, -1.5, 1733612345.999, 2_000_000_000.25, -2_208_988_800, 17_179_869_183]) {
          const gnu = execFileSync('date', ['-d', `@${Math.floor(t)}`, '+%F %T'], { env: { TZ: zone }, encoding: 'utf8' }).trim();
          expect([zone, t, timeText(t)]).toEqual([zone, t, gnu]);
        }
      }
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
    expect(timeText(2 ** 62)).toBe(String(2 ** 62));
  });
});
