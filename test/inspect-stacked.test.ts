// Volumes inside volumes, as libguestfs's phony guests stack them (fedora-lvm-on-luks,
// fedora-luks-on-lvm, fedora-md1+md2 with LVM on the array): made here by the real tools
// (cryptsetup, lvm, mdadm, mkfs.ext4) in an appliance VM with the disks writable, then
// inspected read-only: every layer assembled until nothing new appears, the files inside read.
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect } from '../src/inspect/index.js';
import { inGuest } from './helpers/in-guest.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const KEY = 'stacked-secret';
let work: string;
let disks: string[];

const LUKS = `cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file -`;
/** An ext4 on `device` holding /marker with `text`. */
const ext4 = (device: string, text: string) =>
  [`mkfs.ext4 -q ${device}`, 'mkdir -p /tmp/x', `mount ${device} /tmp/x`, `echo '${text}' > /tmp/x/marker`, 'umount /tmp/x'].join('\n');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'appliance-stacked-'));
  disks = ['lvm-on-luks', 'luks-on-lvm', 'md-a', 'md-b'].map((n) => join(work, `${n}.img`));
  for (const d of disks) {
    writeFileSync(d, Buffer.alloc(0));
    truncateSync(d, 64 << 20);
  }
  const script = [
    // LVM on LUKS
    `printf ${KEY} | ${LUKS} "$(disk 0)"`,
    `printf ${KEY} | cryptsetup open --key-file - "$(disk 0)" outer`,
    `lvm_ pvcreate /dev/mapper/outer`,
    `lvm_ vgcreate vgluks /dev/mapper/outer`,
    `lvm_ lvcreate -Zn -L 16M -n root vgluks`,
    `lvm_ vgmknodes vgluks`,
    ext4('/dev/mapper/vgluks-root', 'lvm on luks'),
    `lvm_ vgchange -an vgluks`,
    'cryptsetup close outer',
    // LUKS on LVM
    `lvm_ pvcreate "$(disk 1)"`,
    `lvm_ vgcreate vgplain "$(disk 1)"`,
    `lvm_ lvcreate -Zn -L 24M -n sealed vgplain`,
    `lvm_ vgmknodes vgplain`,
    `printf ${KEY} | ${LUKS} /dev/mapper/vgplain-sealed`,
    `printf ${KEY} | cryptsetup open --key-file - /dev/mapper/vgplain-sealed inner`,
    ext4('/dev/mapper/inner', 'luks on lvm'),
    'cryptsetup close inner',
    `lvm_ vgchange -an vgplain`,
    // LVM on an md raid1 of two disks
    `mdadm --create /dev/md0 --run --quiet --level=1 --raid-devices=2 --metadata=1.2 "$(disk 2)" "$(disk 3)"`,
    `lvm_ pvcreate /dev/md0`,
    `lvm_ vgcreate vgmd /dev/md0`,
    `lvm_ lvcreate -Zn -L 16M -n data vgmd`,
    `lvm_ vgmknodes vgmd`,
    ext4('/dev/mapper/vgmd-data', 'lvm on md'),
    `lvm_ vgchange -an vgmd`,
    'mdadm --stop /dev/md0',
    'sync',
  ].join('\n');
  await inGuest(script, disks);
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('stacked volumes', () => {
  it('LVM on LUKS, LUKS on an LV and LVM on md are each assembled to the filesystem inside, read-only', async () => {
    await using img = await inspect(disks, { cacheDir: SHARED_CACHE, keys: { '*': KEY } });
    const fss = await img.filesystems();
    const ext4s = fss.filter((f) => f.type === 'ext4');
    expect(img.volumes().errors).toEqual([]);
    expect(ext4s.map((f) => f.id).sort()).toEqual(['vgluks/root', 'vgmd/data', expect.stringMatching(/^luks:/)].sort());
    const markers: Record<string, string> = {};
    for (const f of ext4s) markers[f.id.startsWith('luks:') ? 'luks' : f.id] = (await (await img.mount(f.id)).readFile('/marker')).toString();
    expect(markers).toEqual({ 'vgluks/root': 'lvm on luks\n', luks: 'luks on lvm\n', 'vgmd/data': 'lvm on md\n' });
    expect(img.volumes().luks.map((l) => l.open)).toEqual([true, true]);
    expect(
      img
        .volumes()
        .lvm.map((g) => g.vg)
        .sort(),
    ).toEqual(['vgluks', 'vgmd', 'vgplain']);
  });
});
