import { constants } from 'node:fs';
import { access, open, stat, type FileHandle } from 'node:fs/promises';
import { ApplianceError } from '../errors.js';

export type DiskFormat = 'raw' | 'qcow2' | 'qcow' | 'qed' | 'vmdk' | 'vdi' | 'vhdx' | 'vpc';

export interface DiskSpec {
  path: string;
  /**
   * The image format. 'auto' reads the header; use it only for images you know are not
   * raw: a raw disk whose guest wrote a qcow2 header at its start would be taken as qcow2.
   */
  format: DiskFormat | 'auto';
  /** Default true: the guest cannot change the image. */
  readonly?: boolean;
  /** Allow an image that makes qemu open other host files (backing file, data file, extents). */
  allowBackingFile?: boolean;
}

/** A disk checked and ready for -drive: its format is explicit, so qemu never probes it. */
export interface ResolvedDisk {
  path: string;
  format: DiskFormat;
  readonly: boolean;
}

const HEADER = 512;

/** The format named by the image's header; 'raw' when no known header is there. */
export async function detectDiskFormat(path: string): Promise<DiskFormat> {
  const fh = await openDisk(path, true);
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
  if (text(0, 4) === 'KDMV' || text(0, 21) === '# Disk DescriptorFile') return 'vmdk';
  if (h.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (text(0, 8) === 'vhdxfile') return 'vhdx';
  if (text(0, 8) === 'conectix') return 'vpc';
  return 'raw';
}

/**
 * Checks a user disk before it reaches qemu: it exists and can be opened as asked, its
 * format is explicit (detected only when the caller said 'auto') and matches the header,
 * and it does not make qemu open other host files unless the caller allowed it: a guest
 * that can write an image could otherwise point a backing file at any host file and read
 * it (CVE-2010-3851).
 */
export async function resolveDisk(spec: DiskSpec): Promise<ResolvedDisk> {
  const readonly = spec.readonly ?? true;
  const fh = await openDisk(spec.path, readonly);
  try {
    const head = await readAt(fh, 0, HEADER);
    const detected = formatOf(head);
    const format = spec.format === 'auto' ? detected : spec.format;
    if (spec.format !== 'auto' && format !== 'raw' && detected !== format) {
      throw new ApplianceError(
        'EDISKFORMAT',
        `disk ${spec.path} is not a ${format} image (its header says ${detected}): pass its real format, or "auto" to detect it`,
      );
    }
    if (!spec.allowBackingFile) {
      const ref = await externalReference(fh, format, head);
      if (ref) {
        throw new ApplianceError(
          'EDISKBACKING',
          `disk ${spec.path} is a ${format} image with ${ref}, which qemu would open too (a crafted image can name ` +
            `any host file this way): flatten it with "qemu-img convert -O ${format === 'vmdk' ? 'qcow2' : format} ` +
            `${spec.path} flat.img", or allow it explicitly (allowBackingFile) if you trust it`,
        );
      }
    }
    return { path: spec.path, format, readonly };
  } finally {
    await fh.close();
  }
}

/** What other file the image makes qemu open, described for the error; undefined if none. */
async function externalReference(fh: FileHandle, format: DiskFormat, h: Buffer): Promise<string | undefined> {
  switch (format) {
    case 'qcow':
    case 'qcow2': {
      // Both versions: backing_file_offset (u64 BE) at 8, backing_file_size (u32 BE) at 16.
      const offset = Number(h.readBigUInt64BE(8));
      if (offset !== 0) {
        const name = await readAt(fh, offset, Math.min(h.readUInt32BE(16), 1023));
        return `a backing file (${name.toString('utf8').replace(/\0+$/, '')})`;
      }
      // qcow2 v3: incompatible feature bit 2 is an external data file.
      if (format === 'qcow2' && h.readUInt32BE(4) >= 3 && h.readBigUInt64BE(72) & 4n) return 'an external data file';
      return undefined;
    }
    case 'qed': {
      // features (u64 LE) at 16, bit 0: has a backing file; its name's offset and size at 56 and 60.
      if ((h.readBigUInt64LE(16) & 1n) === 0n) return undefined;
      const name = await readAt(fh, h.readUInt32LE(56), Math.min(h.readUInt32LE(60), 1023));
      return `a backing file (${name.toString('utf8').replace(/\0+$/, '')})`;
    }
    case 'vmdk': {
      if (h.toString('latin1', 0, 4) !== 'KDMV') return 'its extents in other files (a descriptor-only vmdk)';
      // Sparse header: the embedded descriptor's offset and size, in sectors, at 28 and 36.
      const descriptor = await readAt(fh, Number(h.readBigUInt64LE(28)) * 512, Math.min(Number(h.readBigUInt64LE(36)) * 512, 65536));
      const parent = /parentFileNameHint\s*=\s*"([^"]+)"/.exec(descriptor.toString('latin1'));
      return parent ? `a parent image (${parent[1]})` : undefined;
    }
    case 'vpc':
      // Footer copy at 0: disk type (u32 BE) at 60, 4 = differencing (has a parent).
      return h.readUInt32BE(60) === 4 ? 'a parent image (a differencing VHD)' : undefined;
    default:
      // raw has no header; qemu refuses vdi and vhdx images with parents itself.
      return undefined;
  }
}

async function openDisk(path: string, readonly: boolean): Promise<FileHandle> {
  try {
    const st = await stat(path);
    if (!st.isFile() && !st.isBlockDevice()) {
      throw new ApplianceError('EDISKACCESS', `disk ${path} is not a regular file or a block device: pass a disk image`);
    }
    await access(path, readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
    return await open(path, 'r');
  } catch (err) {
    if (err instanceof ApplianceError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const fix =
      code === 'ENOENT'
        ? 'check the path'
        : readonly
          ? 'make it readable by you (chmod/chown, or your group)'
          : 'make it writable by you, or attach it read-only';
    throw new ApplianceError('EDISKACCESS', `cannot open disk ${path} (${code ?? (err as Error).message}): ${fix}`, { cause: err });
  }
}

/** `length` bytes at `position`, zero-filled past the end of the file (so short files parse as headerless). */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  await fh.read(buf, 0, length, position);
  return buf;
}
