/**
 * The headers of a PE (Windows) executable, as far as they tell what it runs on: the MS-DOS
 * stub ("MZ", and at 0x3C the offset of the PE header), the "PE\0\0" signature, the COFF
 * header's machine, and the optional header's magic (PE32 or PE32+). Read from a prefix
 * of the file; nothing past the given bytes is assumed.
 */

/** Bytes to read from the start of a file for readPeHeader: the PE header of any real binary starts well inside them. */
export const PE_PROBE_BYTES = 64 * 1024;

const E_LFANEW = 0x3c;
const COFF_SIZE = 20;
const OPTIONAL_MAGIC: Record<number, PeHeader['format']> = { 0x10b: 'PE32', 0x20b: 'PE32+' };

export interface PeHeader {
  /** IMAGE_FILE_MACHINE_*: 0x14C i386, 0x8664 AMD64, 0xAA64 ARM64, 0x1C4 ARMNT, 0x200 IA-64… */
  machine: number;
  /** The optional header's magic: PE32 (0x10B, 32-bit) or PE32+ (0x20B, 64-bit). */
  format: 'PE32' | 'PE32+';
  /** IMAGE_FILE_* flags (0x2000: a DLL). */
  characteristics: number;
}

/** The PE header of an executable's first bytes, or undefined when they are not a PE image (or end before its header does). */
export function readPeHeader(bytes: Buffer): PeHeader | undefined {
  if (bytes.length < E_LFANEW + 4 || bytes.toString('latin1', 0, 2) !== 'MZ') return undefined;
  const pe = bytes.readUInt32LE(E_LFANEW);
  if (pe + 4 + COFF_SIZE + 2 > bytes.length || bytes.toString('latin1', pe, pe + 4) !== 'PE\0\0') return undefined;
  const coff = pe + 4;
  const format = OPTIONAL_MAGIC[bytes.readUInt16LE(coff + COFF_SIZE)];
  if (!format) return undefined;
  return { machine: bytes.readUInt16LE(coff), format, characteristics: bytes.readUInt16LE(coff + 18) };
}

const MACHINES: Record<number, string> = { 0x14c: 'i386', 0x8664: 'x86_64', 0xaa64: 'aarch64', 0x1c0: 'arm', 0x1c4: 'arm', 0x200: 'ia64' };

/** The architecture a PE machine code names, in Linux's words (i386, x86_64, aarch64, arm, ia64); undefined for others. */
export const peMachineArch = (machine: number): string | undefined => MACHINES[machine];
