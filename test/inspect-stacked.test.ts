// Volumes inside volumes, as libguestfs's phony guests stack them (fedora-lvm-on-luks,
// fedora-luks-on-lvm, fedora-md1+md2 with LVM on the array): made here by the real tools
// (cryptsetup, lvm, mdadm, mkfs.ext4) in an appliance VM with the disks writable, then
// inspected read-only: every layer assembled until nothing new appears, the files inside read.
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect } from '../src/inspect/index.js';
import { boot } from '../src/vm/index.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const KEY = 'stacked-secret';
let work: string;
let disks: string[];

const LVM = `LVM_SYSTEM_DIR= lvm`;
const LVM_CONF = `--config 'devices { obtain_device_list_from_udev = 0 } activation { udev_sync = 0 udev_rules = 0 }'`;
const LUKS = `cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file -`;
const dev = (i: number) => `/dev/$(basename "$(readlink -f /dev/disk/by-id/virtio-disk${i})")`;
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
    'set -eu',
    // LVM on LUKS
    `printf ${KEY} | ${LUKS} ${dev(0)}`,
    `printf ${KEY} | cryptsetup open --key-file - ${dev(0)} outer`,
    `${LVM} pvcreate -q ${LVM_CONF} /dev/mapper/outer`,
    `${LVM} vgcreate -q ${LVM_CONF} vgluks /dev/mapper/outer`,
    `${LVM} lvcreate -q ${LVM_CONF} -Zn -L 16M -n root vgluks`,
    `${LVM} vgmknodes -q ${LVM_CONF} vgluks`,
    ext4('/dev/mapper/vgluks-root', 'lvm on luks'),
    `${LVM} vgchange -q ${LVM_CONF} -an vgluks`,
    'cryptsetup close outer',
    // LUKS on LVM
    `${LVM} pvcreate -q ${LVM_CONF} ${dev(1)}`,
    `${LVM} vgcreate -q ${LVM_CONF} vgplain ${dev(1)}`,
    `${LVM} lvcreate -q ${LVM_CONF} -Zn -L 24M -n sealed vgplain`,
    `${LVM} vgmknodes -q ${LVM_CONF} vgplain`,
    `printf ${KEY} | ${LUKS} /dev/mapper/vgplain-sealed`,
    `printf ${KEY} | cryptsetup open --key-file - /dev/mapper/vgplain-sealed inner`,
    ext4('/dev/mapper/inner', 'luks on lvm'),
    'cryptsetup close inner',
    `${LVM} vgchange -q ${LVM_CONF} -an vgplain`,
    // LVM on an md raid1 of two disks
    `mdadm --create /dev/md0 --run --quiet --level=1 --raid-devices=2 --metadata=1.2 ${dev(2)} ${dev(3)}`,
    `${LVM} pvcreate -q ${LVM_CONF} /dev/md0`,
    `${LVM} vgcreate -q ${LVM_CONF} vgmd /dev/md0`,
    `${LVM} lvcreate -q ${LVM_CONF} -Zn -L 16M -n data vgmd`,
    `${LVM} vgmknodes -q ${LVM_CONF} vgmd`,
    ext4('/dev/mapper/vgmd-data', 'lvm on md'),
    `${LVM} vgchange -q ${LVM_CONF} -an vgmd`,
    'mdadm --stop /dev/md0',
    'sync',
  ].join('\n');
  const vm = await boot({ cacheDir: SHARED_CACHE, disks: disks.map((path) => ({ path, format: 'raw' as const, readonly: false })) });
  try {
    const r = await vm.exec(['sh', '-c', script]);
    if (r.exitCode !== 0) throw new Error(`making the stacked volumes: ${r.stderr.toString()}${r.stdout.toString()}`);
  } finally {
    await vm.close();
  }
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
