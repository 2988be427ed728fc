/**
 * /etc/fstab as libguestfs reads it (inspect_fs_unix_fstab.ml check_fstab_entry): which
 * lines name a filesystem of the guest (floppies, CD-ROMs and the kernel's pseudo
 * filesystems left out), where it goes, and what of it the resolver needs.
 */

/** What an fstab line says: the device, where it goes, its type and options (btrfs's subvol= among them). */
export interface FstabEntry {
  spec: string;
  mountpoint: string;
  type: string;
  options: string[];
}

/** Devices libguestfs never maps: floppies, CD-ROMs, FreeBSD's install media. */
const REMOVABLE = /^(\/dev\/fd\d|\/dev\/cd\d|\/dev\/floppy$|\/dev\/cdrom$|\/dev\/iso9660\/)/;
/** Mount points of the kernel's own filesystems and of removable media. */
const IGNORED_MOUNTPOINT = /^(\/dev|\/proc|\/selinux|\/sys)(\/|$)|^\/media\//;
/** Specs that name a device: by a tag, or a path under /dev (anything else is tmpfs, proc, a network share…). */
export const DEVICE_SPEC = /^(UUID|LABEL|PARTUUID|PARTLABEL|MDUUID)=|^\/dev\//;

/** "///usr//local/" → "/usr/local" (unix_canonical_path). */
export function canonicalPath(path: string): string {
  const parts = path.split('/').filter(Boolean).join('/');
  return path.startsWith('/') ? `/${parts}` : parts;
}

/** What getmntent(3) decodes in a field (glibc's decode_name): a space, a tab, a newline or a backslash written in octal, and a doubled backslash. */
const ESCAPES: Record<string, string> = { '\\040': ' ', '\\011': '\t', '\\012': '\n', '\\134': '\\', '\\\\': '\\' };
const unescape = (field: string) => field.replace(/\\(?:040|011|012|134|\\)/g, (e) => ESCAPES[e]!);

const letter = (disk: number) => String.fromCharCode(97 + disk);

/**
 * A BSD's device as libguestfs translates it to Linux's name (resolve_fstab_device):
 * FreeBSD's GPT partitions ada0p2, vtbd0p2 → sda2; its MBR slice 1's partitions (ada0s1a;
 * "c", the whole slice, has none) → sda5…; NetBSD's disklabel partitions (wd0a; "c" and
 * "d" have none) → sda5…; OpenBSD's disklabel UID "0123456789abcdef.a" → sd0a. (libguestfs
 * types OpenBSD as FreeBSD, so its own rule for OpenBSD's names never applies.)
 * Undefined for any other name.
 */
export function bsdDevice(spec: string, netbsd: boolean): string | undefined {
  let m = /^\/dev\/(ada{0,1}|vtbd)(\d+)p(\d+)$/.exec(spec);
  if (m) {
    const [disk, part] = [Number(m[2]), Number(m[3])];
    return disk <= 26 && part <= 128 ? `/dev/sd${letter(disk)}${part}` : undefined;
  }
  if ((m = /^\/dev\/(ada{0,1}|vtbd)(\d+)s(\d+)([a-z])$/.exec(spec))) {
    const [disk, slice, raw] = [Number(m[2]), Number(m[3]), m[4]!.charCodeAt(0) - 97];
    const part = raw > 2 ? raw - 1 : raw;
    return disk <= 26 && slice === 1 && part < 25 ? `/dev/sd${letter(disk)}${part + 5}` : undefined;
  }
  if (netbsd && (m = /^\/dev\/(l|s)d([0-9])([a-z])$/.exec(spec))) {
    const raw = m[3]!.charCodeAt(0) - 97;
    const part = raw > 3 ? raw - 2 : raw;
    return part < 24 ? `/dev/sd${letter(Number(m[2]))}${part + 5}` : undefined;
  }
  return /^[0-9a-f]{16}\.[a-z]/.test(spec) ? `/dev/sd0${spec[17]}` : undefined;
}

/**
 * The lines that may mount one of the guest's filesystems, swap included (its mount point
 * is "none" or "swap"): a device, a mount point and a type at least, removable media and
 * the kernel's mount points left out. Network shares and pseudo filesystems stay: the
 * caller tells them apart (DEVICE_SPEC).
 */
export function fstabEntries(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[0]!.startsWith('#')) continue;
    const spec = unescape(f[0]!);
    const mountpoint = canonicalPath(unescape(f[1]!));
    if (REMOVABLE.test(spec) || IGNORED_MOUNTPOINT.test(mountpoint)) continue;
    out.push({ spec, mountpoint, type: f[2]!, options: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}
