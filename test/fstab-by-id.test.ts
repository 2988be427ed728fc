// fstab lines naming devices by udev's by-id names, as installers write them: an LV by
// dm-uuid-LVM-<VG UUID><LV UUID> (Ubuntu's installer) or dm-name-<VG>-<LV>, a partition by
// its disk's id (ata-…-partN: SLES, some Debian and Proxmox installs). Made by the real
// tools (sfdisk on the host; lvm, mkfs.ext4 in an appliance VM with the disk writable),
// the UUIDs read from lvm itself; then inspected read-only. libguestfs resolves these
// (inspect_fs_unix_fstab.ml: re_dmuuid, re_diskbyid for an image alone).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect } from '../src/inspect/index.js';
import { inGuest } from './helpers/in-guest.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

let work: string;
let image: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'appliance-fstab-by-id-'));
  image = join(work, 'ubuntu-lvm.img');
  writeFileSync(image, Buffer.alloc(0));
  truncateSync(image, 96 << 20);
  execFileSync('sfdisk', ['-q', image], { input: 'label: gpt\nsize=60M, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\ntype=linux\n' });
  await inGuest(
    [
      'lvm_ pvcreate "$(disk 0)1"',
      'lvm_ vgcreate vg0 "$(disk 0)1"',
      'lvm_ lvcreate -Zn -L 24M -n root vg0',
      'lvm_ lvcreate -Zn -L 16M -n var vg0',
      'uuid() { lvm_ lvs --noheadings -o vg_uuid,lv_uuid "vg0/$1" | tr -d " -"; }',
      'for d in /dev/mapper/vg0-root /dev/mapper/vg0-var "$(disk 0)2"; do mkfs.ext4 -q "$d"; done',
      'mkdir -p /tmp/r && mount /dev/mapper/vg0-root /tmp/r && mkdir -p /tmp/r/etc /tmp/r/bin /tmp/r/var /tmp/r/data',
      'cp /bin/ls /tmp/r/bin/ls',
      'printf \'NAME="Ubuntu"\\nID=ubuntu\\nVERSION_ID="22.04"\\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\\n\' > /tmp/r/etc/os-release',
      'printf "/dev/disk/by-id/dm-uuid-LVM-%s / ext4 defaults 0 1\\n" "$(uuid root)" > /tmp/r/etc/fstab',
      'echo "/dev/disk/by-id/dm-name-vg0-var /var ext4 defaults 0 2" >> /tmp/r/etc/fstab',
      'echo "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part2 /data ext4 defaults 0 2" >> /tmp/r/etc/fstab',
      'mount /dev/mapper/vg0-var /tmp/r/var && mkdir -p /tmp/r/var/lib/dpkg',
      'printf "Package: bash\\nStatus: install ok installed\\nVersion: 5.1-6ubuntu1\\nArchitecture: amd64\\n\\n" > /tmp/r/var/lib/dpkg/status',
      'umount /tmp/r/var /tmp/r',
      'lvm_ vgchange -an vg0',
      'sync',
    ].join('\n'),
    [image],
  );
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('fstab by udev by-id names', () => {
  it('an LV by dm-uuid-LVM-… and dm-name-…, a partition by its disk id: each mount point found, the packages on the /var LV read', async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const [os, ...more] = await img.os({ packages: true });
    expect(more).toEqual([]);
    expect(os!.mountpoints).toEqual({ '/': 'vg0/root', '/var': 'vg0/var', '/data': 'disk0:2' });
    expect(os!.unmatched).toEqual([]);
    expect(os!.packages!.map((p) => `${p.name} ${p.version}`)).toEqual(['bash 5.1']);
    // The OS's tree mounts them: /var's file through the OS's path.
    expect((await (await img.locate('/var/lib/dpkg/status')).fs.readFile('/var/lib/dpkg/status'.slice(4))).toString()).toMatch(/^Package: bash/);
  });
});
