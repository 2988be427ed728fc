/**
 * The image the inspection benchmark reads (tests may use it too): a 3-partition GPT disk
 * as an installer leaves one — a vfat ESP, an ext4 Debian-like root (os-release, fstab by
 * UUID and label, the host's dpkg status, /bin/sh), an xfs /srv with a 200-file folder and
 * a large file — converted to qcow2. Made with the real tools on loop devices (offsets, not
 * losetup -P: partition devices need udev), as root.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** A loop device over bytes [start, start+size) of `file`, detached by the callback's end. */
function withLoop<T>(file: string, start: number, size: number, use: (dev: string) => T): T {
  const dev = sh('losetup', ['-f', '--show', '-o', String(start), '--sizelimit', String(size), file]);
  try {
    return use(dev);
  } finally {
    sh('losetup', ['-d', dev]);
  }
}

function mounted<T>(dev: string, use: (dir: string) => T): T {
  const dir = mkdtempSync('/tmp/appliance-image-mnt-');
  sh('mount', [dev, dir]);
  try {
    return use(dir);
  } finally {
    sh('umount', [dir]);
    rmSync(dir, { recursive: true });
  }
}

export interface OsImage {
  qcow2: string;
  /** A file of the root, its content, and a folder of /srv with 200 files. */
  hostname: string;
  bigFile: string;
  bigFileBytes: number;
}

/** Makes the image in `dir` (`bigMiB` of random data in /srv/big.bin). */
export function makeOsImage(dir: string, bigMiB = 0): OsImage {
  const raw = join(dir, 'os.raw');
  const hostname = 'bench-host';
  writeFileSync(raw, '');
  sh('truncate', ['-s', `${700 + bigMiB}M`, raw]);
  execFileSync('sfdisk', ['-q', raw], { input: 'label: gpt\n,64M,U,\n,250M,L,\n,,L,\n' });
  const parts = (JSON.parse(sh('sfdisk', ['-J', raw])) as { partitiontable: { partitions: { start: number; size: number }[] } }).partitiontable.partitions;
  const part = (n: number) => [parts[n - 1]!.start * 512, parts[n - 1]!.size * 512] as const;
  withLoop(raw, ...part(1), (dev) => sh('mkfs.vfat', ['-n', 'EFI', dev]));
  const srvUuid = sh('uuidgen', []);
  withLoop(raw, ...part(2), (dev) => {
    sh('mkfs.ext4', ['-q', '-L', 'root', dev]);
    const rootUuid = sh('blkid', ['-s', 'UUID', '-o', 'value', dev]);
    mounted(dev, (root) => {
      for (const d of ['etc', 'bin', 'usr/bin', 'var/lib/dpkg', 'srv', 'boot/efi']) mkdirSync(join(root, d), { recursive: true });
      copyFileSync('/etc/os-release', join(root, 'etc/os-release'));
      copyFileSync('/etc/debian_version', join(root, 'etc/debian_version'));
      copyFileSync('/bin/dash', join(root, 'bin/sh'));
      copyFileSync('/var/lib/dpkg/status', join(root, 'var/lib/dpkg/status'));
      writeFileSync(join(root, 'usr/bin/apt-get'), '');
      writeFileSync(join(root, 'etc/hostname'), `${hostname}\n`);
      writeFileSync(
        join(root, 'etc/fstab'),
        `UUID=${rootUuid} / ext4 defaults 0 1\nLABEL=EFI /boot/efi vfat defaults 0 2\nUUID=${srvUuid} /srv xfs defaults 0 2\n`,
      );
    });
  });
  withLoop(raw, ...part(3), (dev) => {
    sh('mkfs.xfs', ['-q', '-f', '-m', `uuid=${srvUuid}`, dev]);
    mounted(dev, (srv) => {
      mkdirSync(join(srv, 'data'));
      for (let i = 1; i <= 200; i++) writeFileSync(join(srv, 'data', `f${i}`), Buffer.alloc(i * 100, i));
      if (bigMiB) sh('dd', ['if=/dev/urandom', `of=${join(srv, 'big.bin')}`, 'bs=1M', `count=${bigMiB}`, 'status=none']);
    });
  });
  const qcow2 = join(dir, 'os.qcow2');
  sh('qemu-img', ['convert', '-O', 'qcow2', raw, qcow2]);
  rmSync(raw);
  return { qcow2, hostname, bigFile: '/srv/big.bin', bigFileBytes: bigMiB << 20 };
}
