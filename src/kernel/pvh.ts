/**
 * PVH direct boot: qemu can jump straight into the kernel's uncompressed ELF (vmlinux) at
 * its Xen PVH entry point, skipping the real-mode setup and the decompressor; under TCG
 * that is ~0.3 s of a ~1.8 s boot. Distributions ship only the bzImage, so the ELF is
 * extracted from its payload (the launcher caches it, see launcher/kernel.ts).
 */
import { stat, type FileHandle } from 'node:fs/promises';
import { openKernel, readSetupHeader } from './bzimage.js';
import { compressionOf, decompress } from './decompress.js';

/** Why extractVmlinux refuses a kernel for good (the other reasons may pass on another try). */
export const NO_PVH_ENTRY = 'no PVH entry note';

// Xen's ELF note XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point (include/xen/interface/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** What a kernel file is for PVH boot: an ELF already, a bzImage whose payload can be extracted, or neither. */
export type KernelShape = { kind: 'elf'; pvh: boolean } | { kind: 'bzImage'; payload: { start: number; end: number } } | { kind: 'other'; why: string };

export async function kernelShape(kernel: string): Promise<KernelShape> {
  const fh = await openKernel(kernel);
  try {
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, 0);
    if (magic.readUInt32BE(0) === 0x7f454c46) return { kind: 'elf', pvh: await hasPvhEntry(fh) };
    const header = await readSetupHeader(fh);
    if (typeof header === 'string') return { kind: 'other', why: `not a bzImage: ${header}` };
    if (!header.payload) return { kind: 'other', why: 'a bzImage without a payload field (boot protocol < 2.08)' };
    return { kind: 'bzImage', payload: header.payload };
  } finally {
    await fh.close();
  }
}

/**
 * Decompresses a bzImage's payload into `dest` and checks it: a reason string when it
 * cannot be used (unknown compression, wrong size, no PVH note), undefined when `dest`
 * holds a vmlinux qemu can boot with its PVH entry.
 */
export async function extractVmlinux(kernel: string, payload: { start: number; end: number }, dest: string): Promise<string | undefined> {
  const fh = await openKernel(kernel);
  let expected: number;
  let magic: Buffer;
  try {
    magic = Buffer.alloc(6);
    await fh.read(magic, 0, 6, payload.start);
    // The build appends the decompressed size (u32 LE) right after the payload.
    const sizeField = Buffer.alloc(4);
    await fh.read(sizeField, 0, 4, payload.end);
    expected = sizeField.readUInt32LE(0);
  } finally {
    await fh.close();
  }
  const compression = compressionOf(magic);
  if (!compression) return `compression with magic ${magic.toString('hex')} is not one of gzip, xz, zstd, lz4`;
  try {
    await decompress({ path: kernel, ...payload }, compression, dest);
  } catch (err) {
    return (err as Error).message;
  }
  const size = (await stat(dest)).size;
  if (size !== expected) return `decompressed ${size} bytes, the header says ${expected}`;
  const out = await openKernel(dest);
  const pvh = await hasPvhEntry(out).finally(() => out.close());
  return pvh ? undefined : NO_PVH_ENTRY;
}

/** True when the ELF has the Xen PVH entry note (x86-64, little endian). */
export async function hasPvhEntry(fh: FileHandle): Promise<boolean> {
  const eh = Buffer.alloc(64);
  const { bytesRead } = await fh.read(eh, 0, 64, 0);
  if (bytesRead < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1 || eh.readUInt16LE(18) !== 62) return false;
  const phoff = Number(eh.readBigUInt64LE(0x20));
  const phentsize = eh.readUInt16LE(0x36);
  const phnum = eh.readUInt16LE(0x38);
  const ph = Buffer.alloc(phentsize * phnum);
  await fh.read(ph, 0, ph.length, phoff);
  for (let i = 0; i < phnum; i++) {
    const p = ph.subarray(i * phentsize, (i + 1) * phentsize);
    if (p.readUInt32LE(0) !== 4 /* PT_NOTE */) continue;
    const size = Number(p.readBigUInt64LE(0x20));
    if (size > 1 << 20) continue;
    const notes = Buffer.alloc(size);
    await fh.read(notes, 0, size, Number(p.readBigUInt64LE(8)));
    if (hasNote(notes, 'Xen', XEN_ELFNOTE_PHYS32_ENTRY)) return true;
  }
  return false;
}

/** Walks ELF notes: namesz, descsz, type, then name and desc, each padded to 4 bytes. */
function hasNote(notes: Buffer, name: string, type: number): boolean {
  const align = (n: number) => (n + 3) & ~3;
  for (let at = 0; at + 12 <= notes.length;) {
    const namesz = notes.readUInt32LE(at);
    const descsz = notes.readUInt32LE(at + 4);
    const noteName = notes.toString('latin1', at + 12, at + 12 + Math.max(0, namesz - 1));
    if (notes.readUInt32LE(at + 8) === type && noteName === name) return true;
    at += 12 + align(namesz) + align(descsz);
  }
  return false;
}
