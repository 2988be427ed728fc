// The CI share of the hostile-image sweep (scripts/hostile-sweep.mjs, whose whole run is
// for people: several seeds of every format): one seed of each corruption for a few
// formats, each image through inspect --json, ls -R, cat, copy-out and diff, judged by the
// script as the promise says (exit 0, 1, 125 or 141, never 2 or 70; every line ours and at
// most 300 characters; no stack; the image unchanged; within 30 s).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_CACHE } from '../helpers/shared-cache.js';

interface Row {
  variant: string;
  statuses?: Record<string, number | string>;
  problems: string[];
}

describe('seeded corruptions of real images', () => {
  it('ext4, vfat, squashfs, ntfs and a GPT disk, each flipped, zeroed and truncated: every command answers as promised', async () => {
    // Asynchronously: a minute's spawnSync blocks the worker, whose reports to vitest then
    // time out ("Timeout calling onTaskUpdate", an error of the run though every test passed).
    const r = await promisify(execFile)(
      process.execPath,
      [resolve('scripts/hostile-sweep.mjs'), '--seeds', '1', '--only', 'ext4,vfat,squashfs,gpt,ntfs', '--json', '--cache-dir', SHARED_CACHE],
      { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 },
    ).then(
      ({ stdout, stderr }) => ({ status: 0, stdout, stderr }),
      (err: { code?: number; stdout?: string; stderr?: string }) => ({ status: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
    );
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Row[];
    expect(rows).toHaveLength(15);
    expect(rows.filter((row) => row.problems.length)).toEqual([]);
    // Something was found wrong in some of them (not every corruption is harmless).
    expect(rows.some((row) => Object.values(row.statuses ?? {}).includes(1))).toBe(true);
  }, 300_000);
});
