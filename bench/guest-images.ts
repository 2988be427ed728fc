/**
 * The other guests the inspection benchmark reads: an rpm root (RHEL-like release files,
 * an rpm sqlite database of 300 packages written by rpm itself) on ext4, and a Windows
 * installation (hives made by hivexregedit: its version, hostname, control set, drive
 * letter and 300 applications; a PE cmd.exe) on NTFS in an MBR disk. Made with the same
 * helpers as the tests (test/helpers: rpmbuild and rpm --justdb, hivexregedit).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHive, REG_BINARY, REG_DWORD, REG_SZ, SERVER2019_VERSION, type RegKeySpec } from '../test/helpers/hives.js';
import { installJustDb, rpmbuildMany } from '../test/helpers/rpmdb.js';

const sh = (cmd: string, args: string[], input?: string) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] }).trim();

export const GUEST_PACKAGES = 300;

/** An ext4 qcow2 whose root is RHEL 9.4 by its release files, with GUEST_PACKAGES rpm packages in /var/lib/rpm/rpmdb.sqlite. */
export async function makeRpmImage(dir: string): Promise<string> {
  const root = join(dir, 'rpm-root');
  for (const d of ['etc', 'bin', 'usr/bin', 'var/lib/rpm']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/redhat-release'), 'Red Hat Enterprise Linux release 9.4 (Plow)\n');
  writeFileSync(join(root, 'etc/fstab'), '/dev/sda / ext4 defaults 0 1\n');
  writeFileSync(join(root, 'etc/hostname'), 'rhel-bench\n');
  writeFileSync(join(root, 'usr/bin/dnf'), '#!/usr/bin/python3\n');
  copyFileSync('/bin/ls', join(root, 'bin/ls'));
  const db = mkdtempSync(join(dir, 'rpmdb-'));
  installJustDb(db, await rpmbuildMany(join(dir, 'rpmbuild'), GUEST_PACKAGES, 1));
  copyFileSync(join(db, 'rpmdb.sqlite'), join(root, 'var/lib/rpm/rpmdb.sqlite'));
  const raw = join(dir, 'rpm.raw');
  sh('mkfs.ext4', ['-q', '-d', root, raw, '256M']);
  const qcow2 = join(dir, 'rpm.qcow2');
  sh('qemu-img', ['convert', '-O', 'qcow2', raw, qcow2]);
  rmSync(raw);
  return qcow2;
}

/** A PE32+ (x86_64) header as cmd.exe's first bytes: the architecture is read from it. */
function peHeader(): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(0x8664, 0x84); // machine: AMD64
  b.writeUInt16LE(240, 0x94); // optional header size
  b.writeUInt16LE(0x20b, 0x98); // PE32+
  return b;
}

/** A raw MBR disk (signature 0x12345678) with one NTFS partition holding Windows Server 2019 with GUEST_PACKAGES applications. */
export async function makeWindowsImage(dir: string): Promise<string> {
  const software: RegKeySpec[] = [
    SERVER2019_VERSION,
    ...Array.from({ length: GUEST_PACKAGES }, (_, i) => ({
      path: ['Microsoft', 'Windows', 'CurrentVersion', 'Uninstall', `App${i}`],
      values: [REG_SZ('DisplayName', `Application ${i}`), REG_SZ('DisplayVersion', `1.${i}`), REG_SZ('Publisher', 'Bench Inc.')],
    })),
  ];
  const offset = 1 << 20;
  const mounted = Buffer.concat([Buffer.from([0x78, 0x56, 0x34, 0x12]), Buffer.from(BigUint64Array.of(BigInt(offset)).buffer)]);
  const system: RegKeySpec[] = [
    { path: ['Select'], values: [REG_DWORD('Current', 1), REG_DWORD('Default', 1)] },
    { path: ['ControlSet001', 'Services', 'Tcpip', 'Parameters'], values: [REG_SZ('Hostname', 'WIN-BENCH')] },
    { path: ['MountedDevices'], values: [REG_BINARY('\\DosDevices\\C:', mounted)] },
  ];
  const hives = mkdtempSync(join(dir, 'hives-'));
  const [soft, sys] = [await makeHive(hives, 'software', software), await makeHive(hives, 'system', system)];
  const part = join(dir, 'ntfs.part');
  writeFileSync(part, '');
  sh('truncate', ['-s', '96M', part]);
  sh('mkntfs', ['-F', '-Q', '-q', '-L', 'Windows', part]);
  const mnt = mkdtempSync('/tmp/appliance-bench-ntfs-');
  sh('ntfs-3g', ['-o', 'rw', part, mnt]);
  try {
    mkdirSync(join(mnt, 'Windows/System32/config'), { recursive: true });
    copyFileSync(soft, join(mnt, 'Windows/System32/config/SOFTWARE'));
    copyFileSync(sys, join(mnt, 'Windows/System32/config/SYSTEM'));
    writeFileSync(join(mnt, 'Windows/System32/cmd.exe'), peHeader());
  } finally {
    sh('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
  const raw = join(dir, 'windows.raw');
  writeFileSync(raw, '');
  sh('truncate', ['-s', '100M', raw]);
  sh('sfdisk', ['-q', raw], `label: dos\nlabel-id: 0x12345678\nstart=${offset / 512}, size=${(96 << 20) / 512}, type=7\n`);
  sh('dd', [`if=${part}`, `of=${raw}`, 'bs=1M', `seek=${offset >> 20}`, 'conv=notrunc,sparse', 'status=none']);
  rmSync(part);
  return raw;
}
