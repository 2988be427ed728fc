// The CI share of the hostile-image sweep (scripts/hostile-sweep.mjs, whose whole run is
// for people: several seeds of every format): one seed of each corruption for a few
// formats, each image through inspect --json, ls -R, cat, copy-out and diff, judged by the
// script as the promise says (exit 0, 1, 125 or 141, never 2 or 70; every line ours and at
// most 300 characters; no stack; the image unchanged; within 30 s).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../helpers/proc.js';
import { SHARED_CACHE } from '../helpers/shared-cache.js';

interface Row {
  variant: string;
  statuses?: Record<string, number | string>;
  problems: string[];
}

describe('seeded corruptions of real images', () => {
  it('ext4, vfat, squashfs, ntfs and a GPT disk, each flipped, zeroed and truncated: every command answers as promised', async () => {
    const r = await run(
      process.execPath,
      [resolve('scripts/hostile-sweep.mjs'), '--seeds', '1', '--only', 'ext4,vfat,squashfs,gpt,ntfs', '--json', '--cache-dir', SHARED_CACHE],
      { timeout: 300_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Row[];
    expect(rows).toHaveLength(15);
    expect(rows.filter((row) => row.problems.length)).toEqual([]);
    // Something was found wrong in some of them (not every corruption is harmless).
    expect(rows.some((row) => Object.values(row.statuses ?? {}).includes(1))).toBe(true);
  }, 300_000);
});
