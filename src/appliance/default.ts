/**
 * The default appliance: what inspecting a disk image needs, taken program by program
 * (with the libraries they load) rather than as whole packages, which would bring
 * locales, helpers and documentation and weigh several times more. Programs missing
 * on a host are left out (said with --verbose), so one absent tool never breaks the
 * default build.
 */
// prettier-ignore
export const DEFAULT_BINARIES: readonly string[] = [
  // the shell (dash: bash with its readline and terminfo would weigh 1.8 MB more)
  'sh',
  // core utilities
  'basename', 'cat', 'chgrp', 'chmod', 'chown', 'cp', 'cut', 'date', 'dd', 'df', 'dirname', 'du', 'echo', 'env',
  'false', 'head', 'id', 'ln', 'ls', 'md5sum', 'mkdir', 'mknod', 'mktemp', 'mv', 'nproc', 'printf', 'pwd',
  'readlink', 'realpath', 'rm', 'rmdir', 'sha1sum', 'sha256sum', 'sha512sum', 'sleep', 'sort', 'stat',
  'sync', 'tail', 'tee', 'test', 'touch', 'tr', 'true', 'truncate', 'uname', 'uniq', 'wc',
  // text and archives
  'find', 'xargs', 'grep', 'sed', 'tar', 'gzip',
  // disks and mounts (util-linux)
  'mount', 'umount', 'blkid', 'lsblk', 'sfdisk', 'findmnt', 'losetup', 'wipefs', 'blockdev',
  // e2fsprogs
  'mke2fs', 'mkfs.ext2', 'mkfs.ext3', 'mkfs.ext4', 'e2fsck', 'fsck.ext2', 'fsck.ext3', 'fsck.ext4', 'tune2fs',
  'dumpe2fs', 'resize2fs', 'debugfs', 'e2label',
  // kernel modules by hand (modprobe itself comes with the modules), and the kernel's log
  'insmod', 'lsmod', 'dmesg',
  // volumes inspection assembles, read-only: LVM, md, LUKS, btrfs (src/inspect/volumes.ts)
  'lvm', 'vgchange', 'vgs', 'lvs', 'pvs', 'dmsetup', 'mdadm', 'cryptsetup', 'btrfs',
  // xfsprogs, to look into an xfs by hand (xfs_db -r, xfs_repair -n)
  'xfs_db', 'xfs_info', 'xfs_admin', 'xfs_spaceman', 'xfs_repair',
  // NTFS, which Debian's cloud kernel cannot mount: its FUSE driver (src/inspect/mounts.ts)
  'ntfs-3g',
];

/**
 * Host paths the default appliance needs at their standard place whatever $PATH found:
 * scripts start with #!/bin/sh.
 */
export const DEFAULT_PATHS: readonly string[] = ['/bin/sh'];

/**
 * Kernel modules put in the root so that mounting a filesystem loads its driver on
 * demand (the kernel runs /sbin/modprobe). Names a kernel has neither as a module nor
 * built in are skipped: ext4 is built into Debian's kernels, f2fs is not in its cloud
 * flavour. fuse is for ntfs-3g. The nls tables are what vfat, exfat and isofs ask for by
 * default; xxhash and blake2b are btrfs's optional checksums; loop is for losetup.
 */
// prettier-ignore
export const DEFAULT_ROOT_MODULES: readonly string[] = [
  'ext4', 'xfs', 'btrfs', 'vfat', 'msdos', 'exfat', 'isofs', 'squashfs', 'f2fs', 'udf', 'fuse', 'loop',
  'nls_cp437', 'nls_iso8859_1', 'nls_utf8', 'nls_ascii', 'xxhash_generic', 'blake2b_generic',
  // what LVM, md arrays and LUKS volumes need (src/inspect/volumes.ts)
  'dm_mod', 'dm_crypt', 'md_mod', 'linear', 'raid0', 'raid1', 'raid10', 'raid456',
  'dm_snapshot', 'dm_mirror', 'dm_zero', 'dm_thin_pool', 'dm_raid',
  // LUKS's default ciphers (aes-xts-plain64; LUKS1's aes-cbc-essiv): cbc and aes are built in
  'xts', 'ecb', 'essiv',
];

/**
 * The modules loaded before the snapshot point, for boot() and inspect() alike (vm.ts
 * `modules`): so both resume one snapshot, and an inspection's mounts never wait on
 * modprobe (~0.2 s each under TCG). The filesystems (fuse for ntfs-3g), the volume
 * drivers, and the character sets vfat, exfat and isofs ask for at mount time.
 */
// prettier-ignore
export const PRELOADED_MODULES: readonly string[] = [
  'xfs', 'btrfs', 'vfat', 'exfat', 'isofs', 'squashfs', 'udf', 'fuse', 'f2fs',
  'nls_cp437', 'nls_utf8', 'nls_iso8859_1', 'nls_ascii',
  'dm_mod', 'dm_crypt', 'xts', 'ecb', 'md_mod', 'raid0', 'raid1', 'linear',
];
