import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { keepNewest, sha256File } from '../files.js';
import { kernelOpenError } from './bzimage.js';
import { lz4LegacyDecode } from './lz4.js';

/**
 * PVH direct boot: qemu can jump straight into the kernel's uncompressed ELF (vmlinux) at
 * its Xen PVH entry point, skipping the real-mode setup and the decompressor; under TCG
 * that is ~0.3 s of a ~1.8 s boot. Distributions ship only the bzImage, so the ELF is
 * extracted from its payload once and cached by the bzImage's hash.
 */

// Xen's ELF note XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point (include/xen/interface/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** Extracted kernels kept in the cache: the current one and the one before a kernel upgrade. */
const KEEP = 2;

type Log = (message: string) => void;

/**
 * The uncompressed kernel with a PVH entry for `kernel` (a bzImage, or already an ELF),
 * extracted into `<cacheRoot>/vmlinux/` on first use; undefined when the kernel has no
 * PVH entry or its payload cannot be extracted, and the caller boots the bzImage.
 * `kernelSha256`, when the caller knows it (an appliance's manifest does), saves
 * hashing the kernel on every boot.
 */
export async function pvhKernel(kernel: string, cacheRoot: string, log: Log = () => {}, kernelSha256?: string): Promise<string | undefined> {
  const fh = await open(kernel, 'r').catch((err: unknown) => {
    throw kernelOpenError(kernel, err);
  });
  let payload: Payload | undefined;
  try {
    const head = Buffer.alloc(0x250);
    await fh.read(head, 0, head.length, 0);
    if (head.readUInt32BE(0) === 0x7f454c46) return (await hasPvhEntry(fh)) ? kernel : undefined;
    payload = parsePayload(head);
  } finally {
    await fh.close();
  }
  if (!payload) {
    log(`vmlinux: ${kernel} is not a bzImage with a payload (boot protocol < 2.08): booting it as is`);
    return undefined;
  }

  const dir = join(cacheRoot, 'vmlinux');
  const hash = kernelSha256 ?? (await sha256File(kernel));
  const elf = join(dir, `${hash}.elf`);
  const noPvh = join(dir, `${hash}.no-pvh`);
  const now = new Date();
  if (await utimes(elf, now, now).then(() => true, () => false)) return elf;
  if (await stat(noPvh).then(() => true, () => false)) return undefined;

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `${hash}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    const why = await extract(kernel, payload, tmp);
    if (why) {
      log(`vmlinux: cannot extract the payload of ${kernel} (${why}): booting the bzImage`);
      return undefined;
    }
    const out = await open(tmp, 'r');
    const pvh = await hasPvhEntry(out).finally(() => out.close());
    if (!pvh) {
      log(`vmlinux: ${kernel} has no PVH entry note: booting the bzImage`);
      await writeFile(noPvh, '');
      return undefined;
    }
    await rename(tmp, elf);
    await keepNewest(dir, KEEP, (name) => name.endsWith('.elf'));
    log(`vmlinux: extracted ${kernel} to ${elf}`);
    return elf;
  } finally {
    await rm(tmp, { force: true });
  }
}

interface Payload {
  /** Where the compressed kernel starts and ends in the bzImage (without the size the build appends). */
  start: number;
  end: number;
}

/** The compressed payload's place, from the setup header (Documentation/arch/x86/boot.rst). */
function parsePayload(head: Buffer): Payload | undefined {
  if (head.toString('latin1', 0x202, 0x206) !== 'HdrS' || head.readUInt16LE(0x206) < 0x208) return undefined;
  const setupSects = head[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + head.readUInt32LE(0x248);
  const length = head.readUInt32LE(0x24c);
  return length > 4 ? { start, end: start + length - 4 } : undefined;
}

/** Decompresses the payload to `dest`; a reason string when it cannot. */
async function extract(kernel: string, payload: Payload, dest: string): Promise<string | undefined> {
  const fh = await open(kernel, 'r');
  try {
    const magic = Buffer.alloc(6);
    await fh.read(magic, 0, 6, payload.start);
    const sizeField = Buffer.alloc(4);
    await fh.read(sizeField, 0, 4, payload.end);
    const expected = sizeField.readUInt32LE(0);
    const range = () => createReadStream(kernel, { start: payload.start, end: payload.end - 1 });
    try {
      if (magic.readUInt32LE(0) === 0x184c2102) {
        const out = await open(dest, 'w');
        await lz4LegacyDecode(fh, payload.start, payload.end, out).finally(() => out.close());
      } else if (magic[0] === 0x1f && magic[1] === 0x8b) {
        await pipeline(range(), createGunzip(), createWriteStream(dest));
      } else if (magic.equals(Buffer.from('fd377a585a00', 'hex'))) {
        await filter('xz', range(), dest);
      } else if (magic.readUInt32LE(0) === 0xfd2fb528) {
        await filter('zstd', range(), dest);
      } else {
        return `compression with magic ${magic.toString('hex')} is not one of gzip, xz, zstd, lz4`;
      }
    } catch (err) {
      return (err as Error).message;
    }
    const size = (await stat(dest)).size;
    return size === expected ? undefined : `decompressed ${size} bytes, the header says ${expected}`;
  } finally {
    await fh.close();
  }
}

/** Runs `tool -dc` from `input` to `dest`. */
async function filter(tool: string, input: NodeJS.ReadableStream, dest: string): Promise<void> {
  const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${tool} -dc exited with ${code}`))));
  });
  await Promise.all([pipeline(input, child.stdin), pipeline(child.stdout, createWriteStream(dest)), exited]);
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
  for (let at = 0; at + 12 <= notes.length; ) {
    const namesz = notes.readUInt32LE(at);
    const descsz = notes.readUInt32LE(at + 4);
    const noteName = notes.toString('latin1', at + 12, at + 12 + Math.max(0, namesz - 1));
    if (notes.readUInt32LE(at + 8) === type && noteName === name) return true;
    at += 12 + align(namesz) + align(descsz);
  }
  return false;
}
