// The order of the operating systems found is libguestfs's order of filesystems
// (daemon/listfs.ml), the order virt-inspector lists their roots in: whole disks first, then
// device-mapper devices, partitions, md arrays and LVs. A program that takes the first root
// takes the same one as with libguestfs.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect } from '../src/inspect/index.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

let work: string;
let partitioned: string;
let whole: string;

/** A root of `distro` in a folder: what OS detection needs (fstab, a program, os-release). */
function root(dir: string, distro: string): string {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'bin'));
  copyFileSync('/bin/ls', join(dir, 'bin/ls'));
  writeFileSync(join(dir, 'etc/fstab'), '/dev/root / ext4 defaults 0 1\n');
  writeFileSync(join(dir, 'etc/os-release'), `ID=${distro}\nVERSION_ID=1\n`);
  return dir;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-order-'));
  partitioned = join(work, 'partitioned.img');
  writeFileSync(partitioned, Buffer.alloc(0));
  truncateSync(partitioned, 40 << 20);
  execFileSync('sfdisk', ['-q', partitioned], { input: 'label: dos\nstart=2048, type=83\n' });
  execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'offset=1048576', '-d', root(join(work, 'a'), 'fedora'), partitioned, '32M']);
  whole = join(work, 'whole.img');
  execFileSync('mkfs.ext4', ['-q', '-d', root(join(work, 'b'), 'ubuntu'), whole, '16M']);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the order of the operating systems', () => {
  it("is libguestfs's: the OS on a whole disk before the one on a partition of an earlier disk", async () => {
    await using img = await inspect([partitioned, whole], { cacheDir: SHARED_CACHE });
    expect((await img.os()).map((o) => [o.root, o.distro])).toEqual([
      ['disk1', 'ubuntu'],
      ['disk0:1', 'fedora'],
    ]);
  });
});
