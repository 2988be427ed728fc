/**
 * User disks, as qemu gets them: each image is opened here once, checked through that
 * open file, and handed to qemu as a file descriptor (`-add-fd`, `/dev/fdset/N`) with its
 * format and protocol driver explicit. So qemu never parses a user's path (a relative
 * `fat:/etc` or `json:{…}` would be a protocol to it), never probes a format, and opens
 * exactly the file that was checked, even if the path is swapped in between (a symlink
 * flipped after the check). What an image's header may name (a backing file, an external
 * data file, vmdk extents) is refused unless the caller allows it: a guest that can write
 * an image could otherwise point one at any host file and read it (CVE-2010-3851).
 */
import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ApplianceError, DiskRefusedError } from '../errors.js';
import { escapeControls } from '../printable.js';
import { DISK_FORMAT_CHOICES, isDiskFormat, type DiskFormat } from '../disk-formats.js';

export type { DiskFormat } from '../disk-formats.js';

export interface DiskSpec {
  path: string;
  /**
   * The image format. Without it the disk is raw, unless its header says it is another
   * format, which is refused with the format to give (attaching a qcow2 as raw shows the
   * guest its container). 'auto' takes the format the header names; use it only for
   * images you know are not raw: a raw disk whose guest wrote a qcow2 header at its start
   * would be taken as qcow2.
   */
  format?: DiskFormat | 'auto';
  /** Default true: the guest cannot change the image. */
  readonly?: boolean;
  /** Allow an image that makes qemu open other host files (backing file, data file, extents). */
  allowBackingFile?: boolean;
}

/**
 * The caller's disks as specs: a path alone is `{ path }`. What JavaScript can pass that
 * the types forbid (one path instead of a list, a number for a path, a filesystem type for
 * a format) is refused by name, not left to fail deeper in words of ours.
 */
export function diskSpecs(disks: unknown): DiskSpec[] {
  const usage = 'give a list of disk images, each a path or { path, format?, readonly?, allowBackingFile? }';
  if (!Array.isArray(disks)) throw new ApplianceError('EINVAL', `disks: ${usage} (got ${typeof disks === 'string' ? 'one path' : typeof disks})`);
  return disks.map((d: unknown, i) => {
    const spec = typeof d === 'string' ? { path: d } : (d as Partial<DiskSpec> | null);
    if (typeof spec?.path !== 'string' || spec.path === '') throw new ApplianceError('EINVAL', `disks[${i}]: ${usage}`);
    const { format, readonly, allowBackingFile } = spec;
    if (format !== undefined && !isDiskFormat(format)) {
      throw new ApplianceError(
        'EINVAL',
        `disks[${i}] (${spec.path}): format "${String(format)}" is not an image format: use one of ${DISK_FORMAT_CHOICES.join(', ')}`,
      );
    }
    for (const [name, value] of Object.entries({ readonly, allowBackingFile })) {
      if (value !== undefined && typeof value !== 'boolean') throw new ApplianceError('EINVAL', `disks[${i}] (${spec.path}): ${name} must be true or false`);
    }
    return spec as DiskSpec;
  });
}

/** A disk checked and open: qemu gets `fd` (a duplicate), never the path. */
export interface OpenDisk {
  /** Absolute. */
  path: string;
  format: DiskFormat;
  readonly: boolean;
  /** qemu's file protocol for it: a regular file, or a block device. */
  protocol: 'file' | 'host_device';
  /** The caller allowed a backing file: qemu may open it (by the name the image holds). */
  allowBackingFile: boolean;
  /** Which file it is, whatever path named it: a block device by its number, a file by device and inode. */
  identity: string;
  /** Our descriptor of the image, open as `readonly` says (its handle's). */
  fd: number;
  handle: FileHandle;
  /** A read-write disk's read-only descriptor of the same open file (qemu opens read-only first). */
  readHandle?: FileHandle;
}

const HEADER = 512;

/** The format named by the image's header; 'raw' when no known header is there. */
export async function detectDiskFormat(path: string): Promise<DiskFormat> {
  const { fh } = await openImage(path, true);
  try {
    return formatOf(await readAt(fh, 0, HEADER));
  } finally {
    await fh.close();
  }
}

function formatOf(h: Buffer): DiskFormat {
  const text = (start: number, end: number) => h.toString('latin1', start, end);
  if (text(0, 4) === 'QFI\xfb') return h.readUInt32BE(4) === 1 ? 'qcow' : 'qcow2';
  if (text(0, 4) === 'QED\0') return 'qed';
  if (text(0, 4) === 'KDMV' || text(0, 4) === 'COWD' || text(0, 21) === '# Disk DescriptorFile') return 'vmdk';
  if (h.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (text(0, 8) === 'vhdxfile') return 'vhdx';
  if (text(0, 8) === 'conectix') return 'vpc';
  return 'raw';
}

/**
 * A fixed VHD: its footer only at its end (a dynamic one has a copy at 0, which formatOf
 * reads). qemu's vpc driver reads it there when told the format, as it cannot probe it;
 * so do we, when the caller names vpc.
 */
async function fixedVhd(fh: FileHandle, st: Stats): Promise<boolean> {
  if (!st.isFile() || st.size < HEADER) return false;
  return (await readAt(fh, st.size - HEADER, 8)).toString('latin1') === 'conectix';
}

/**
 * Opens a user disk and checks it through that descriptor: a regular file or a block
 * device, readable (and writable unless read-only), of the format asked (see DiskSpec),
 * naming no other host file unless allowed. Close it with closeDisks once qemu has it.
 */
export async function openDisk(spec: DiskSpec): Promise<OpenDisk> {
  const readonly = spec.readonly ?? true;
  const { fh, st } = await openImage(spec.path, readonly);
  try {
    const head = await readAt(fh, 0, HEADER);
    const detected = formatOf(head);
    const format = chooseFormat(spec, detected === 'raw' && spec.format === 'vpc' && (await fixedVhd(fh, st)) ? 'vpc' : detected);
    const cipher = encryption(format, head);
    if (cipher) {
      throw new ApplianceError(
        'EDISKFORMAT',
        `disk ${spec.path} is an encrypted ${format} image (${cipher}): qemu would need its key, which appliance does not pass; ` +
          'decrypt a copy first (qemu-img convert with --object secret, see qemu-img(1))',
      );
    }
    if (!spec.allowBackingFile) {
      const ref = await externalReference(fh, format, head);
      if (ref) {
        const flat = format === 'vmdk' ? 'qcow2' : format;
        throw new DiskRefusedError(
          'EDISKBACKING',
          spec.path,
          (w) =>
            `disk ${spec.path} is a ${format} image with ${ref}, which qemu would open too (an image can name any host file so): ` +
            `if you trust it, give ${w.backing(spec.path)}; else flatten it: qemu-img convert -O ${flat} ${spec.path} flat.${flat}`,
        );
      }
    }
    const disk: OpenDisk = {
      path: resolve(spec.path),
      format,
      readonly,
      protocol: st.isBlockDevice() ? 'host_device' : 'file',
      allowBackingFile: spec.allowBackingFile ?? false,
      identity: st.isBlockDevice() ? `device ${st.rdev}` : `${st.dev}:${st.ino}`,
      fd: fh.fd,
      handle: fh,
      // Through /proc/self/fd: the file that was checked, whatever the path names by now.
      readHandle: readonly ? undefined : await open(`/proc/self/fd/${fh.fd}`, constants.O_RDONLY | constants.O_NONBLOCK),
    };
    return disk;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Opens every disk, or none: a disk that fails closes those opened before it. */
export async function openDisks(specs: DiskSpec[]): Promise<OpenDisk[]> {
  const opened: OpenDisk[] = [];
  try {
    for (const spec of specs) opened.push(await openDisk(spec));
    refuseWritingTwice(specs, opened);
    return opened;
  } catch (err) {
    await closeDisks(opened);
    throw err;
  }
}

/**
 * One image given twice (by one path or two), read-write at least once: the guest would
 * write it through two devices that know nothing of each other, and qemu does not stop it
 * within one VM. Read-only twice is fine (a clone's comparison with itself).
 */
function refuseWritingTwice(specs: DiskSpec[], disks: OpenDisk[]): void {
  const seen = new Map<string, number>();
  for (const [i, d] of disks.entries()) {
    const first = seen.get(d.identity);
    if (first !== undefined && !(d.readonly && disks[first]!.readonly)) {
      throw new ApplianceError(
        'EDISKOPEN',
        `disk ${specs[i]!.path} is the image of disk${first} (${specs[first]!.path}) again, and read-write: the guest would write it through two devices at once; give it once, or read-only both times`,
      );
    }
    seen.set(d.identity, i);
  }
}

/** Closes our descriptors (qemu keeps its own duplicates). */
export async function closeDisks(disks: OpenDisk[]): Promise<void> {
  await Promise.all(disks.flatMap((d) => [d.handle.close(), d.readHandle?.close()]));
}

function chooseFormat(spec: DiskSpec, detected: DiskFormat): DiskFormat {
  if (spec.format === 'auto') return detected;
  const path = spec.path;
  if (spec.format === undefined) {
    if (detected === 'raw') return 'raw';
    throw new DiskRefusedError(
      'EDISKFORMAT',
      path,
      (w) =>
        `disk ${path} has a ${detected} header: give ${w.format(path, detected)} to attach it as a ${detected} image, or ${w.format(path, 'raw')} to attach its bytes as they are`,
    );
  }
  if (spec.format !== 'raw' && detected !== spec.format) {
    const asked = spec.format;
    throw new DiskRefusedError(
      'EDISKFORMAT',
      path,
      (w) =>
        `disk ${path} is not a ${asked} image (its header says ${detected}): give ${w.format(path, detected)}, or ${w.format(path, 'auto')} to take the header's`,
    );
  }
  return spec.format;
}

/** The cipher of an encrypted qcow or qcow2 image (crypt_method, u32 BE at 36 and 32); undefined if none. */
function encryption(format: DiskFormat, h: Buffer): string | undefined {
  if (format !== 'qcow' && format !== 'qcow2') return undefined;
  const method = h.readUInt32BE(format === 'qcow' ? 36 : 32);
  return method === 0 ? undefined : method === 1 ? 'aes' : method === 2 ? 'luks' : `method ${method}`;
}

/** What other file the image makes qemu open, described for the error; undefined if none. */
async function externalReference(fh: FileHandle, format: DiskFormat, h: Buffer): Promise<string | undefined> {
  switch (format) {
    case 'qcow':
    case 'qcow2': {
      // Both versions: backing_file_offset (u64 BE) at 8, backing_file_size (u32 BE) at 16.
      const offset = Number(h.readBigUInt64BE(8));
      if (offset !== 0) return `a backing file (${await nameAt(fh, offset, h.readUInt32BE(16))})`;
      // qcow2 v3: incompatible feature bit 2 is an external data file.
      if (format === 'qcow2' && h.readUInt32BE(4) >= 3 && h.readBigUInt64BE(72) & 4n) return 'an external data file';
      return undefined;
    }
    case 'qed':
      // features (u64 LE) at 16, bit 0: has a backing file; its name's offset and size at 56 and 60.
      return h.readBigUInt64LE(16) & 1n ? `a backing file (${await nameAt(fh, h.readUInt32LE(56), h.readUInt32LE(60))})` : undefined;
    case 'vmdk':
      return vmdkReference(fh, h);
    case 'vpc':
      // Footer copy at 0: disk type (u32 BE) at 60, 4 = differencing (has a parent).
      return h.readUInt32BE(60) === 4 ? 'a parent image (a differencing VHD)' : undefined;
    default:
      // raw has no header; qemu refuses vdi and vhdx images with parents itself.
      return undefined;
  }
}

/**
 * Only a self-contained sparse vmdk passes: the KDMV header with a capacity, whose one
 * extent is the file itself. A descriptor file, a COWD image, and a KDMV header with
 * capacity 0 (qemu then reads the embedded descriptor and opens the extents it names)
 * can all name other files; so can parentFileNameHint in the embedded descriptor.
 */
async function vmdkReference(fh: FileHandle, h: Buffer): Promise<string | undefined> {
  const magic = h.toString('latin1', 0, 4);
  if (magic === 'COWD') return 'a parent image (a COWD vmdk)';
  if (magic !== 'KDMV') return 'its extents in other files (a descriptor-only vmdk)';
  if (h.readBigUInt64LE(12) === 0n) return 'its extents named by its embedded descriptor (capacity 0)';
  const offset = Number(h.readBigUInt64LE(28)) * 512;
  if (offset === 0) return undefined;
  const descriptor = await readAt(fh, offset, Math.min(Number(h.readBigUInt64LE(36)) * 512, 65536));
  const parent = /parentFileNameHint\s*=\s*"([^"]*)"/.exec(descriptor.toString('latin1'));
  return parent ? `a parent image (${escapeControls(parent[1]!)})` : undefined;
}

/** A file name stored in an image header, for an error message (bounded, NULs trimmed, control characters escaped). */
async function nameAt(fh: FileHandle, offset: number, size: number): Promise<string> {
  return escapeControls((await readAt(fh, offset, Math.min(size, 1023))).toString('utf8').replace(/\0+$/, ''));
}

/** An image opened, and refused unless it is a regular file or a block device. */
async function openImage(path: string, readonly: boolean): Promise<{ fh: FileHandle; st: Stats }> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: a FIFO at the path must not block this open forever (it is refused
    // after the fstat); it changes nothing for files and block devices.
    fh = await open(path, (readonly ? constants.O_RDONLY : constants.O_RDWR) | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const fix =
      code === 'ENOENT'
        ? 'check the path'
        : code === 'EISDIR'
          ? 'pass a disk image, not a folder'
          : readonly
            ? 'make it readable by you (chmod/chown, or your group)'
            : 'make it writable by you, or attach it read-only';
    throw new ApplianceError('EDISKACCESS', `cannot open disk ${path} (${code ?? (err as Error).message}): ${fix}`, { cause: err });
  }
  const st = await fh.stat();
  if (st.isFile() || st.isBlockDevice()) return { fh, st };
  await fh.close();
  throw new ApplianceError('EDISKACCESS', `disk ${path} is not a regular file or a block device: pass a disk image`);
}

/** `length` bytes at `position`, zero-filled past the end of the file (so short files parse as headerless). */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  await fh.read(buf, 0, length, position);
  return buf;
}
