/**
 * libguestfs's phony guests, the images its own inspection tests run on, made again here
 * with guestfish: the same layouts (partitions, LVM, md, LUKS in both nestings, btrfs
 * subvolumes, NTFS with hives), labels, UUIDs, fstabs and release files as libguestfs's
 * test-data/phony-guests scripts make, with contents of our own (package databases made by
 * dpkg's format, pacman's, rpm itself; hives by hivexregedit from our .reg text; a host
 * binary as /bin/ls). One guestfish launch per group of guests, two at a time; the images are kept
 * by the hash of this file and the host binary, so a machine builds them once.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { guestfish } from './guestfs.js';
import { emptyHive, REG_DWORD, REG_SZ, REG_BINARY, regText, type RegKeySpec } from './hives.js';
import { run } from './images.js';
import { installJustDb, rpmbuild, rpmQueryAll } from './rpmdb.js';

const BINARY = '/usr/bin/true'; // an x86_64 dynamic ELF, as libguestfs's bin-x86_64-dynamic

export const PHONY_GUESTS = [
  'debian',
  'ubuntu',
  'archlinux',
  'coreos',
  'fedora',
  'fedora-md',
  'fedora-btrfs',
  'fedora-luks-on-lvm',
  'fedora-lvm-on-luks',
  'windows',
] as const;
export type PhonyGuest = (typeof PHONY_GUESTS)[number];

/**
 * The LUKS keys of the fedora-luks-on-lvm LVs, and of fedora-lvm-on-luks's container.
 * (libguestfs's Logical-Volume-3 has a binary key: virt-inspector 1.48 takes keys as
 * text and asks for every container's, so ours is text.)
 */
export const LUKS_ON_LVM_KEYS = {
  Root: 'FEDORA-Root',
  'Logical-Volume-1': 'FEDORA-LV1',
  'Logical-Volume-2': 'FEDORA-LV2',
  'Logical-Volume-3': 'FEDORA-LV3',
} as const;
export const LVM_ON_LUKS_KEY = 'FEDORA';

/** Each guest's images (fedora-md has two). */
export const imagesOf = (dir: string, g: PhonyGuest): string[] =>
  (g === 'fedora-md' ? ['fedora-md1.img', 'fedora-md2.img'] : [`${g}.img`]).map((f) => join(dir, f));

/** Where rpm -qa's list of a fedora guest's database is kept (JSON, RpmPackage[]). */
export const rpmListOf = (dir: string, g: PhonyGuest): string => join(dir, `${g}.rpm-qa.json`);

/** dpkg's status file: every paragraph ends with a blank line, as dpkg writes it (libguestfs drops a last one without). */
const DPKG_STATUS = [
  'Package: phony-base\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nSource: phony (3.1-2)\nVersion: 3.1-2\nDescription: the base of a phony system\n It holds nothing.\n .\n Nothing at all.\nHomepage: https://example.org/phony\n',
  'Package: phony-libs\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:0.9.8-1\nDescription: phony libraries\n',
  'Package: phony-doc\nStatus: install ok installed\nArchitecture: all\nVersion: 3.1-2\nDescription: phony documentation\n',
  'Package: phony-gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2.0-1\nDescription: removed, its configuration kept\n',
]
  .map((p) => `${p}\n`)
  .join('');

const PACMAN_DESC = '%NAME%\nphony-tool\n\n%VERSION%\n2:3.4-5\n\n%DESC%\nA phony pacman package\n\n%URL%\nhttps://example.org/\n\n%ARCH%\nx86_64\n\n';

const WINDOWS_SYSTEM: RegKeySpec[] = [
  { path: ['Select'], values: [REG_DWORD('Current', 1), REG_DWORD('Default', 1), REG_DWORD('Failed', 0), REG_DWORD('LastKnownGood', 2)] },
  // C: is the partition at 256 MiB (its byte offset, little endian) of the disk whose MBR signature is "1234".
  { path: ['MountedDevices'], values: [REG_BINARY('\\DosDevices\\C:', Buffer.from([0x31, 0x32, 0x33, 0x34, 0, 0, 0, 0x10, 0, 0, 0, 0]))] },
  { path: ['ControlSet001', 'Services', 'Tcpip', 'Parameters'], values: [REG_SZ('Hostname', 'windows.invalid')] },
];
const uninstall = (wow: boolean, key: string, values: RegKeySpec['values']): RegKeySpec => ({
  path: [...(wow ? ['WOW6432node'] : []), 'Microsoft', 'Windows', 'CurrentVersion', 'Uninstall', key],
  values,
});
const WINDOWS_SOFTWARE: RegKeySpec[] = [
  {
    path: ['Microsoft', 'Windows NT', 'CurrentVersion'],
    values: [REG_SZ('ProductName', 'Microsoft Windows 7 Phony Edition'), REG_SZ('CurrentVersion', '6.1'), REG_SZ('InstallationType', 'Client')],
  },
  uninstall(false, 'phony1', [
    REG_SZ('DisplayName', 'Phony One'),
    REG_SZ('DisplayVersion', '1.0.1'),
    REG_DWORD('VersionMajor', 1),
    REG_DWORD('VersionMinor', 0),
  ]),
  uninstall(false, 'phony2', [
    REG_SZ('DisplayName', 'Phony Two'),
    REG_SZ('DisplayVersion', '2.0'),
    REG_SZ('URLInfoAbout', 'https://example.org/'),
    REG_SZ('Comments', 'A longer word about it'),
  ]),
  uninstall(false, 'phony3', [
    REG_SZ('DisplayName', 'Phony Three'),
    REG_SZ('Publisher', 'Phony Inc.'),
    REG_SZ('InstallLocation', 'C:\\Program Files\\Phony\\three'),
  ]),
  uninstall(true, 'phony4', [REG_SZ('DisplayName', 'Phony Four (32-bit)'), REG_SZ('DisplayVersion', '4.4'), REG_SZ('Publisher', 'Phony Inc.')]),
];

/** A PE32 console program for i386: headers only, as file(1) and the inspectors read them. */
function pe32(): Buffer {
  const b = Buffer.alloc(0x200);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x40, 0x3c);
  b.write('PE\0\0', 0x40, 'latin1');
  const coff = 0x44;
  b.writeUInt16LE(0x14c, coff); // i386
  b.writeUInt16LE(0xe0, coff + 16); // size of the optional header
  b.writeUInt16LE(0x0102, coff + 18); // executable, 32-bit
  const opt = coff + 20;
  b.writeUInt16LE(0x10b, opt); // PE32
  b.writeUInt32LE(0x400000, opt + 28); // image base
  b.writeUInt32LE(0x1000, opt + 32);
  b.writeUInt32LE(0x200, opt + 36);
  b.writeUInt16LE(4, opt + 40);
  b.writeUInt16LE(4, opt + 48);
  b.writeUInt32LE(0x1000, opt + 56);
  b.writeUInt32LE(0x200, opt + 60);
  b.writeUInt16LE(3, opt + 68); // the console subsystem
  b.writeUInt32LE(16, opt + 92);
  return b;
}

async function hive(dir: string, name: string, prefix: string, keys: RegKeySpec[]): Promise<string> {
  const path = join(dir, name);
  writeFileSync(path, emptyHive());
  writeFileSync(`${path}.reg`, regText(keys, prefix));
  await run('hivexregedit', ['--merge', path, '--prefix', prefix, `${path}.reg`]);
  return path;
}

/** An rpm database (sqlite, by rpm itself) with three packages: an epoch, noarch, two versions of one name. */
function rpmDatabase(dir: string): string {
  const top = join(dir, 'rpmbuild');
  const rpms = [
    rpmbuild(top, { name: 'phony-kernel', version: '2.6.35', release: '6.fc14', epoch: 1 }),
    rpmbuild(top, { name: 'phony-data', version: '1.0', release: '1.fc14', noarch: true }),
    rpmbuild(top, { name: 'phony-lib', version: '0.5', release: '2.fc14' }, 'i686'),
  ];
  const dbpath = join(dir, 'rpmdb');
  installJustDb(dbpath, rpms);
  return join(dbpath, 'rpmdb.sqlite');
}

/**
 * A LUKS2 container as guestfish's luks-format makes it, but with a cheap key derivation
 * (pbkdf2, 1000 iterations): cryptsetup's default (argon2id tuned to 2 s) costs seconds of
 * TCG for every open, by guestfish, virt-inspector and ours alike. What is inspected, LUKS
 * on an LV and LVM in LUKS, is the same.
 */
const luksFormat = (device: string, key: string) =>
  `debug sh "printf %s '${key}' | cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 ${device} -"\n`;

const disk = (name: string, size: string) => `sparse ${name} ${size}\n`;
const mbr2 = (dev: string) => `part-init ${dev} mbr\npart-add ${dev} p 64 524287\npart-add ${dev} p 524288 -64\n`;
// The fedora guests' disks are 1 GiB: the second partition from the half.
const mbrFedora = (dev: string) => `part-init ${dev} mbr\npart-add ${dev} p 64 1048575\npart-add ${dev} p 1048576 -64\n`;
const e2 = (dev: string, uuid: string, label?: string) =>
  `mkfs ext2 ${dev} blocksize:4096\n${label ? `set-label ${dev} ${label}\n` : ''}set-e2uuid ${dev} ${uuid}\n`;
const U = (n: number) => `01234567-0123-0123-0123-01234567890${n}`;

function debianLike(name: 'debian' | 'ubuntu', files: string): string {
  const lvm = name === 'debian';
  return (
    disk(`${name}.img`, '512M') +
    'run\n' +
    mbr2('/dev/sda') +
    (lvm
      ? 'pvcreate /dev/sda2\nvgcreate debian /dev/sda2\nlvcreate root debian 64\nlvcreate usr debian 32\nlvcreate var debian 32\nlvcreate home debian 32\n'
      : '') +
    e2('/dev/sda1', U(1), 'BOOT') +
    (lvm ? e2('/dev/debian/root', U(2)) + e2('/dev/debian/usr', U(3)) + e2('/dev/debian/var', U(4)) + e2('/dev/debian/home', U(5)) : e2('/dev/sda2', U(2))) +
    (lvm
      ? 'mount /dev/debian/root /\nmkdir /boot\nmount /dev/sda1 /boot\nmkdir /usr\nmount /dev/debian/usr /usr\nmkdir /var\nmount /dev/debian/var /var\nmkdir /home\nmount /dev/debian/home /home\n'
      : 'mount /dev/sda2 /\nmkdir /boot\nmount /dev/sda1 /boot\nmkdir /home\nmkdir /usr\n') +
    'mkdir /bin\nmkdir /etc\nmkdir-p /var/lib/dpkg\nmkdir /var/lib/urandom\n' +
    `upload ${files}/${name}.fstab /etc/fstab\n` +
    'write /etc/debian_version "5.0.1"\n' +
    (name === 'ubuntu' ? `upload ${files}/lsb-release /etc/lsb-release\n` : '') +
    `write /etc/hostname "${name}.invalid"\n` +
    `upload ${files}/dpkg-status /var/lib/dpkg/status\n` +
    `upload ${files}/ls /bin/ls\nchmod 0755 /bin/ls\n` +
    'mkdir /boot/grub\ntouch /boot/grub/grub.conf\n'
  );
}

/** The fedora guests' common part, their root mounted at / and /boot's device given. */
function fedoraFiles(files: string, bootdev: string, mdadm: boolean): string {
  return (
    e2(bootdev, U(1), 'BOOT') +
    `mkdir /boot\nmount ${bootdev} /boot\n` +
    'mkdir /bin\nmkdir /etc\nmkdir /etc/sysconfig\nmkdir-p /usr/share/zoneinfo/Europe\ntouch /usr/share/zoneinfo/Europe/London\n' +
    'mkdir-p /var/lib/rpm\nmkdir-p /usr/lib/rpm\nmkdir-p /var/log/journal\n' +
    'write /etc/shadow "root::15440:0:99999:7:::\\n"\nchmod 0 /etc/shadow\n' +
    `upload ${files}/fedora.fstab /etc/fstab\n` +
    'write /etc/motd "Welcome to Fedora release 14 (Phony)\\n"\n' +
    'write /etc/redhat-release "Fedora release 14 (Phony)"\nwrite /etc/fedora-release "Fedora release 14 (Phony)"\n' +
    'write /etc/sysconfig/network "HOSTNAME=fedora.invalid"\n' +
    // The arrays' UUIDs, as mdadm knows them, in the guest's mdadm.conf: md0 is /boot's array, md1 the root's.
    (mdadm ? `upload ${files}/mdadm-conf.sh /mdadm-conf.sh\ndebug sh "sh /sysroot/mdadm-conf.sh"\nrm /mdadm-conf.sh\n` : '') +
    `upload ${files}/rpmdb.sqlite /var/lib/rpm/rpmdb.sqlite\n` +
    'touch /usr/lib/rpm/rpmrc\nwrite /usr/lib/rpm/macros "%_dbpath /var/lib/rpm\\n%_db_backend sqlite\\n"\n' +
    `upload ${files}/ls /bin/ls\nchmod 0755 /bin/ls\n` +
    'mkdir /boot/grub\ntouch /boot/grub/grub.conf\n' +
    'write /etc/test1 "abcdefg"\nwrite /etc/test2 ""\nwrite /bin/test1 "abcdefg"\nln-s /bin/test1 /bin/test5\nmkfifo 0777 /bin/test6\nmknod 0777 10 10 /bin/test7\n'
  );
}

const lvmRoot = (pv: string) =>
  `pvcreate ${pv}\nvgcreate VG ${pv}\nlvcreate Root VG 32\nlvcreate LV1 VG 32\nlvcreate LV2 VG 32\nlvcreate LV3 VG 64\n` +
  'mkfs ext2 /dev/VG/Root blocksize:4096\nset-label /dev/VG/Root ROOT\nset-uuid /dev/VG/Root 01234567-0123-0123-0123-012345678902\n' +
  'mkfs ext2 /dev/VG/LV1 blocksize:4096\nmkfs ext2 /dev/VG/LV2 blocksize:1024\nmkfs ext2 /dev/VG/LV3 blocksize:2048\nmount /dev/VG/Root /\n';

/** Run in libguestfs's appliance (the guest's root at /sysroot). */
const MDADM_CONF_SH = `{
  printf 'MAILADDR root\\nAUTO +imsm +1.x -all\\n'
  i=0
  for d in bootdev rootdev; do
    echo "ARRAY /dev/md$i level=raid1 num-devices=2 UUID=$(mdadm --detail --export /dev/md/$d | sed -n 's/^MD_UUID=//p')"
    i=$((i + 1))
  done
} > /sysroot/etc/mdadm.conf
`;

const FSTAB_LABELS = 'LABEL=BOOT /boot ext2 default 0 0\nLABEL=ROOT / ext2 default 0 0\n';

/** The guestfish script of each guest, and the files it uploads (written to `files` first). */
function script(g: PhonyGuest, files: string): { script: string; files: Record<string, string | Buffer> } {
  switch (g) {
    case 'debian':
      return {
        script: debianLike('debian', files),
        files: {
          'debian.fstab':
            'LABEL=BOOT /boot ext2 default 0 0\n/dev/debian/root / ext2 default 0 0\n/dev/debian/usr /usr ext2 default 1 2\n/dev/debian/var /var ext2 default 1 2\n/dev/debian/home /home ext2 default 1 2\n',
        },
      };
    case 'ubuntu':
      return {
        script: debianLike('ubuntu', files),
        files: {
          'ubuntu.fstab': 'LABEL=BOOT /boot ext2 default 0 0\n/dev/sda2 / ext2 default 1 2\n/dev/mapper/cryptswap1 none swap sw 0 0\n',
          'lsb-release': 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.10\nDISTRIB_CODENAME=maverick\nDISTRIB_DESCRIPTION="Ubuntu 10.10 (Phony Pharaoh)"\n',
        },
      };
    case 'archlinux':
      return {
        script:
          disk('archlinux.img', '512M') +
          'run\npart-init /dev/sda mbr\npart-add /dev/sda p 64 -64\nmkfs ext4 /dev/sda1 blocksize:4096\nset-e2uuid /dev/sda1 01234567-0123-0123-0123-012345678902\nmount /dev/sda1 /\n' +
          'mkdir /boot\nmkdir /bin\nmkdir /etc\nmkdir /home\nmkdir /usr\nmkdir-p /var/lib/pacman/local/phony-tool-2:3.4-5\n' +
          `upload ${files}/fstab /etc/fstab\ntouch /etc/arch-release\nwrite /etc/hostname "archlinux.test"\n` +
          `upload ${files}/desc /var/lib/pacman/local/phony-tool-2:3.4-5/desc\nupload ${files}/ls /bin/ls\nchmod 0755 /bin/ls\nmkdir /boot/grub\ntouch /boot/grub/grub.conf\n`,
        // Uploaded, as every file that names a device: the group's build renames the devices of commands only.
        files: { desc: PACMAN_DESC, fstab: '/dev/sda1 / ext4 rw,relatime,data=ordered 0 1' },
      };
    case 'coreos':
      return {
        script:
          disk('coreos.img', '512M') +
          'run\npart-init /dev/sda gpt\npart-add /dev/sda p 4096 266239\npart-add /dev/sda p 266240 270335\npart-add /dev/sda p 270336 532479\npart-add /dev/sda p 532480 794623\npart-add /dev/sda p 794624 -4096\n' +
          'part-set-name /dev/sda 1 EFI_SYSTEM\npart-set-bootable /dev/sda 1 true\npart-set-name /dev/sda 2 BIOS-BOOT\npart-set-name /dev/sda 3 USR-A\npart-set-name /dev/sda 4 USR-B\npart-set-name /dev/sda 5 ROOT\n' +
          'mkfs fat /dev/sda1\nmkfs ext4 /dev/sda3\nset-label /dev/sda3 USR-A\nset-uuid /dev/sda3 01234567-0123-0123-0123-012345678901\n' +
          'mkfs ext4 /dev/sda5\nset-label /dev/sda5 ROOT\nset-uuid /dev/sda5 01234567-0123-0123-0123-012345678902\n' +
          'mount /dev/sda5 /\nmkdir-p /etc/coreos\nmkdir /usr\nmount /dev/sda3 /usr\nmkdir /usr/bin\nmkdir /usr/lib64\nmkdir /usr/local\nmkdir-p /usr/share/coreos/\n' +
          'ln-s usr/bin /bin\nln-s usr/lib64 /lib64\nln-s lib64 /lib\nln-s lib64 /usr/lib\nmkdir /root\nmkdir /home\n' +
          `write /etc/coreos/update.conf "GROUP=stable"\nupload ${files}/os-release /usr/lib/os-release\nln-s ../usr/lib/os-release /etc/os-release\nwrite /etc/hostname "coreos.invalid"\n`,
        files: {
          'os-release':
            'NAME=CoreOS\nID=coreos\nVERSION=899.13.0\nVERSION_ID=899.13.0\nBUILD_ID=2016-03-23-0120\nPRETTY_NAME="CoreOS 899.13.0"\nHOME_URL="https://coreos.com/"\n',
        },
      };
    case 'fedora':
      return {
        script: disk('fedora.img', '1G') + 'run\n' + mbrFedora('/dev/sda') + lvmRoot('/dev/sda2') + fedoraFiles(files, '/dev/sda1', false),
        files: { 'fedora.fstab': FSTAB_LABELS },
      };
    case 'fedora-md':
      return {
        script:
          disk('fedora-md1.img', '1G') +
          disk('fedora-md2.img', '1G') +
          'run\n' +
          mbrFedora('/dev/sda') +
          mbrFedora('/dev/sdb') +
          'md-create bootdev "/dev/sda1 /dev/sdb1"\nmd-create rootdev "/dev/sda2 /dev/sdb2"\n' +
          lvmRoot('/dev/md/rootdev') +
          fedoraFiles(files, '/dev/md/bootdev', true),
        files: { 'fedora.fstab': '/dev/md0 /boot ext2 default 0 0\nLABEL=ROOT / ext2 default 0 0\n', 'mdadm-conf.sh': MDADM_CONF_SH },
      };
    case 'fedora-btrfs':
      return {
        script:
          disk('fedora-btrfs.img', '1G') +
          'run\npart-init /dev/sda mbr\npart-add /dev/sda p 64 524287\npart-add /dev/sda p 524288 -64\n' +
          'mkfs-btrfs /dev/sda2 label:ROOT\nmount /dev/sda2 /\nbtrfs-subvolume-create /root\nbtrfs-subvolume-create /home\numount /\nmount btrfsvol:/dev/sda2/root /\n' +
          fedoraFiles(files, '/dev/sda1', false),
        files: { 'fedora.fstab': 'LABEL=BOOT /boot ext2 default 0 0\nLABEL=ROOT / btrfs subvol=root 0 0\nLABEL=ROOT /home btrfs subvol=home 0 0\n' },
      };
    case 'fedora-lvm-on-luks':
      return {
        script:
          disk('fedora-lvm-on-luks.img', '1G') +
          'run\n' +
          mbrFedora('/dev/sda') +
          luksFormat('/dev/sda2', LVM_ON_LUKS_KEY) +
          `cryptsetup-open /dev/sda2 luks\n${LVM_ON_LUKS_KEY}\n` +
          lvmRoot('/dev/mapper/luks') +
          fedoraFiles(files, '/dev/sda1', false),
        files: { 'fedora.fstab': FSTAB_LABELS },
      };
    case 'fedora-luks-on-lvm':
      return {
        script:
          disk('fedora-luks-on-lvm.img', '1G') +
          'run\n' +
          mbrFedora('/dev/sda') +
          'pvcreate /dev/sda2\nvgcreate Volume-Group /dev/sda2\nlvcreate Root Volume-Group 32\nlvcreate Logical-Volume-1 Volume-Group 32\nlvcreate Logical-Volume-2 Volume-Group 32\nlvcreate Logical-Volume-3 Volume-Group 64\n' +
          Object.entries(LUKS_ON_LVM_KEYS)
            .map(([lv, key]) => luksFormat(`/dev/Volume-Group/${lv}`, key))
            .join('') +
          // guestfish reads each key from the line after its command (--keys-from-stdin).
          Object.entries(LUKS_ON_LVM_KEYS)
            .map(([lv, key]) => `cryptsetup-open /dev/Volume-Group/${lv} ${lv.replace('Logical-Volume-', 'LV')}-luks\n${key}\n`)
            .join('') +
          'mkfs ext2 /dev/mapper/Root-luks blocksize:4096 label:ROOT\nset-uuid /dev/mapper/Root-luks 01234567-0123-0123-0123-012345678902\n' +
          'mkfs ext2 /dev/mapper/LV1-luks blocksize:4096 label:LV1\nmkfs ext2 /dev/mapper/LV2-luks blocksize:1024 label:LV2\nmkfs ext2 /dev/mapper/LV3-luks blocksize:2048 label:LV3\n' +
          'mount /dev/mapper/Root-luks /\n' +
          fedoraFiles(files, '/dev/sda1', false),
        files: { 'fedora.fstab': FSTAB_LABELS },
      };
    case 'windows':
      return {
        script:
          disk('windows.img', '512M') +
          'run\n' +
          mbr2('/dev/sda') +
          'pwrite-device /dev/sda "1234" 0x01b8\nmkfs ntfs /dev/sda1\nmkfs ntfs /dev/sda2\nmount /dev/sda2 /\n' +
          'mkdir-p /Windows/System32/Config\nmkdir-p /Windows/System32/Drivers\n' +
          `upload ${files}/SOFTWARE /Windows/System32/Config/SOFTWARE\nupload ${files}/SYSTEM /Windows/System32/Config/SYSTEM\nupload ${files}/cmd.exe /Windows/System32/cmd.exe\n` +
          'mkdir "/Program Files"\ntouch /autoexec.bat\n',
        files: { 'cmd.exe': pe32() },
      };
  }
}

/** What every image is made from: this file and the binary copied in. */
function buildKey(): string {
  return createHash('sha256')
    .update(readFileSync(new URL(import.meta.url)))
    .update(readFileSync(BINARY))
    .digest('hex')
    .slice(0, 16);
}

/** Guests built in one guestfish launch each group: no two of a group share a volume group's name. */
const GROUPS: PhonyGuest[][] = [
  ['debian', 'ubuntu', 'archlinux', 'coreos', 'windows', 'fedora-btrfs', 'fedora-luks-on-lvm'],
  ['fedora'],
  ['fedora-md'],
  ['fedora-lvm-on-luks'],
];

/**
 * The folder of the phony guests' images, built now where they are not yet (a guestfish
 * launch a group, two at a time, for the groups that hold a `wanted` guest; the images made
 * in a folder of their own and moved whole).
 */
export async function phonyGuests(wanted: readonly PhonyGuest[] = PHONY_GUESTS): Promise<string> {
  const dir = join(tmpdir(), `appliance-phony-guests-${buildKey()}`);
  mkdirSync(dir, { recursive: true });
  const made = (g: PhonyGuest) => [...imagesOf(dir, g), ...(g.startsWith('fedora') ? [rpmListOf(dir, g)] : [])].every(existsSync);
  const queue = GROUPS.filter((group) => group.some((g) => wanted.includes(g)) && !group.every(made));
  const worker = async () => {
    // A launch that fails on its own is tried once more: twice in five CI runs on a busy host
    // the appliance's kernel did not have a partition just added ("Device /dev/sda2 does not
    // exist"), waiting for udev or not. build() starts from nothing each time.
    for (let group = queue.shift(); group; group = queue.shift()) await build(dir, group).catch(() => build(dir, group));
  };
  await Promise.all([worker(), worker()]);
  return dir;
}

/** The files a guest's script uploads, written to `files`. */
async function prepareFiles(dir: string, work: string, g: PhonyGuest, files: string, uploads: Record<string, string | Buffer>): Promise<void> {
  mkdirSync(files, { recursive: true });
  for (const [name, content] of Object.entries(uploads)) writeFileSync(join(files, name), content);
  writeFileSync(join(files, 'ls'), readFileSync(BINARY));
  if (g.startsWith('fedora')) {
    const db = rpmDatabase(join(work, `rpm-${g}`));
    writeFileSync(join(files, 'rpmdb.sqlite'), readFileSync(db));
    // rpm's own reading of the database the guest gets: the oracle of its package list.
    writeFileSync(rpmListOf(dir, g), JSON.stringify(rpmQueryAll(dirname(db))));
  }
  if (g === 'debian' || g === 'ubuntu') writeFileSync(join(files, 'dpkg-status'), DPKG_STATUS);
  if (g === 'windows') {
    await hive(files, 'SOFTWARE', 'HKEY_LOCAL_MACHINE\\SOFTWARE', WINDOWS_SOFTWARE);
    await hive(files, 'SYSTEM', 'HKEY_LOCAL_MACHINE\\SYSTEM', WINDOWS_SYSTEM);
  }
}

/**
 * One launch for a group: every guest's disks added first, then each guest's commands with
 * its disks' names moved past the earlier guests' (its /dev/sda is the group's /dev/sdc…),
 * and everything unmounted before the next.
 */
async function build(dir: string, group: PhonyGuest[]): Promise<void> {
  const work = join(dir, `.build-${group[0]}`);
  rmSync(work, { recursive: true, force: true });
  try {
    const heads: string[] = [];
    const bodies: string[] = [];
    for (const g of group) {
      const files = join(work, `files-${g}`);
      const s = script(g, files);
      await prepareFiles(dir, work, g, files, s.files);
      const at = s.script.indexOf('run\n');
      const shift = heads.join('').split('sparse ').length - 1;
      heads.push(s.script.slice(0, at));
      bodies.push(
        s.script.slice(at + 4).replace(/\/dev\/sd([a-z])/g, (_, d: string) => `/dev/sd${String.fromCharCode(d.charCodeAt(0) + shift)}`) + 'umount-all\n',
      );
    }
    // guestfish makes the images in `work` (its "sparse" names are relative), then they are moved whole.
    await guestfish(`lcd ${work}\n${heads.join('')}run\n${bodies.join('')}`);
    for (const image of group.flatMap((g) => imagesOf(dir, g))) renameSync(join(work, image.slice(dir.length + 1)), image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
