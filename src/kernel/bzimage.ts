import { open, type FileHandle } from 'node:fs/promises';
import { ApplianceError } from '../errors.js';

// x86 boot protocol (Documentation/arch/x86/boot.rst): the setup header sits at 0x1F1 of
// the bzImage: setup_sects at 0x1F1, the boot flag at 0x1FE, the "HdrS" magic at 0x202,
// the protocol version at 0x206, at 0x20E the offset (minus 0x200) of a NUL-terminated
// string that starts with the kernel release ("6.1.0-56-cloud-amd64 (debian-kernel@…) …"),
// and from protocol 2.08 the compressed payload's offset and length at 0x248 and 0x24C.
const HEADER_BYTES = 0x250;
const VERSION_MAX = 256;

/** What the launcher and the kernel discovery read of a bzImage's setup header. */
export interface SetupHeader {
  /** The boot protocol version, e.g. 0x20f. */
  protocol: number;
  /** Offset of the kernel_version string in the file; 0 if the kernel did not set one. */
  versionOffset: number;
  /** The compressed kernel inside the file (protocol 2.08 and later), without the size the build appends after it. */
  payload?: { start: number; end: number };
}

/** The setup header, or why the file is not a bzImage. */
export async function readSetupHeader(fh: FileHandle): Promise<SetupHeader | string> {
  const head = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await fh.read(head, 0, head.length, 0);
  if (bytesRead < 0x210) return 'file too short';
  if (head.readUInt16LE(0x1fe) !== 0xaa55) return 'no boot flag';
  if (head.toString('latin1', 0x202, 0x206) !== 'HdrS') return 'no HdrS magic';
  const protocol = head.readUInt16LE(0x206);
  const pointer = protocol >= 0x200 ? head.readUInt16LE(0x20e) : 0;
  const header: SetupHeader = { protocol, versionOffset: pointer ? pointer + 0x200 : 0 };
  if (protocol >= 0x208 && bytesRead >= HEADER_BYTES) {
    const start = ((head[0x1f1] || 4) + 1) * 512 + head.readUInt32LE(0x248);
    const length = head.readUInt32LE(0x24c);
    if (length > 4) header.payload = { start, end: start + length - 4 };
  }
  return header;
}

/**
 * The kernel release of a bzImage, read from its header rather than guessed from the
 * file name, so a renamed or copied kernel still finds its /lib/modules/<release>.
 */
export async function readKernelVersion(bzImagePath: string): Promise<string> {
  const notBzImage = (why: string) =>
    new ApplianceError(
      'EKERNELFORMAT',
      `${bzImagePath} is not an x86 bzImage kernel (${why}): pass a vmlinuz file (the kernel option, --kernel or APPLIANCE_KERNEL)`,
    );
  const fh = await openKernel(bzImagePath);
  try {
    const header = await readSetupHeader(fh);
    if (typeof header === 'string') throw notBzImage(header);
    if (!header.versionOffset) throw notBzImage('no kernel_version field');
    const text = Buffer.alloc(VERSION_MAX);
    const got = (await fh.read(text, 0, text.length, header.versionOffset)).bytesRead;
    const end = text.subarray(0, got).indexOf(0);
    const release = text.toString('latin1', 0, end < 0 ? got : end).split(' ')[0] ?? '';
    if (!/^[0-9][\x21-\x7e]*$/.test(release)) throw notBzImage(`kernel_version is "${release}"`);
    return release;
  } catch (err) {
    // A directory opens fine and fails on read (EISDIR): still one clear line.
    throw err instanceof ApplianceError ? err : kernelOpenError(bzImagePath, err);
  } finally {
    await fh.close();
  }
}

/** Opens a kernel file, with one clear error line for each way that fails. */
export async function openKernel(path: string): Promise<FileHandle> {
  return open(path, 'r').catch((err: unknown) => {
    throw kernelOpenError(path, err);
  });
}

/** One clear line for the ways a kernel file cannot be opened (Ubuntu ships /boot/vmlinuz-* mode 0600). */
function kernelOpenError(path: string, err: unknown): ApplianceError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new ApplianceError(
      'EKERNELPERM',
      `kernel ${path} is not readable by you (some distributions, like Ubuntu, ship /boot/vmlinuz-* mode 0600): ` +
        `run "sudo chmod 0644 ${path}", or pass a readable copy (the kernel option, --kernel PATH or APPLIANCE_KERNEL)`,
      { cause: err },
    );
  }
  if (code === 'ENOENT') {
    return new ApplianceError('ENOKERNEL', `kernel ${path} does not exist: pass an existing vmlinuz (the kernel option, --kernel PATH or APPLIANCE_KERNEL)`, {
      cause: err,
    });
  }
  return new ApplianceError('EKERNEL', `cannot read kernel ${path}: ${(err as Error).message}`, { cause: err });
}
