import { open } from 'node:fs/promises';
import { ApplianceError } from '../errors.js';

// x86 boot protocol (Documentation/arch/x86/boot.rst): the setup header sits at 0x1F1
// of the bzImage, with the boot flag at 0x1FE, the "HdrS" magic at 0x202, the protocol
// version at 0x206 and, at 0x20E, the offset (minus 0x200) of a NUL-terminated string
// that starts with the kernel release, e.g. "6.1.0-56-cloud-amd64 (debian-kernel@…) #1 SMP …".
const BOOT_FLAG_OFFSET = 0x1fe;
const MAGIC_OFFSET = 0x202;
const PROTOCOL_OFFSET = 0x206;
const VERSION_PTR_OFFSET = 0x20e;
const VERSION_MAX = 256;

/**
 * The kernel release of a bzImage, read from its header rather than guessed from the
 * file name, so a renamed or copied kernel still finds its /lib/modules/<release>.
 */
export async function readKernelVersion(bzImagePath: string): Promise<string> {
  const notBzImage = (why: string) =>
    new ApplianceError(
      'EKERNELFORMAT',
      `${bzImagePath} is not an x86 bzImage kernel (${why}): pass a vmlinuz file with --kernel or APPLIANCE_KERNEL`,
    );
  const fh = await open(bzImagePath, 'r').catch((err: unknown) => {
    throw kernelOpenError(bzImagePath, err);
  });
  try {
    const head = Buffer.alloc(0x210);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < head.length) throw notBzImage('file too short');
    if (head.readUInt16LE(BOOT_FLAG_OFFSET) !== 0xaa55) throw notBzImage('no boot flag');
    if (head.toString('latin1', MAGIC_OFFSET, MAGIC_OFFSET + 4) !== 'HdrS') throw notBzImage('no HdrS magic');
    // kernel_version exists from boot protocol 2.00 on; 0 means the kernel did not set it.
    const pointer = head.readUInt16LE(VERSION_PTR_OFFSET);
    if (head.readUInt16LE(PROTOCOL_OFFSET) < 0x200 || pointer === 0) throw notBzImage('no kernel_version field');
    const text = Buffer.alloc(VERSION_MAX);
    const got = (await fh.read(text, 0, text.length, pointer + 0x200)).bytesRead;
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

/** One clear line for the ways a kernel file cannot be opened (Ubuntu ships /boot/vmlinuz-* mode 0600). */
export function kernelOpenError(path: string, err: unknown): ApplianceError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new ApplianceError(
      'EKERNELPERM',
      `kernel ${path} is not readable by you (some distributions, like Ubuntu, ship /boot/vmlinuz-* mode 0600): ` +
        `run "sudo chmod 0644 ${path}", or pass a readable copy with --kernel PATH or APPLIANCE_KERNEL`,
      { cause: err },
    );
  }
  if (code === 'ENOENT') {
    return new ApplianceError(
      'ENOKERNEL',
      `kernel ${path} does not exist: pass an existing vmlinuz with --kernel PATH or APPLIANCE_KERNEL`,
      { cause: err },
    );
  }
  return new ApplianceError('EKERNEL', `cannot read kernel ${path}: ${(err as Error).message}`, { cause: err });
}
