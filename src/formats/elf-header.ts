/** The ELF file header's first fields (elf(5)): what both the host's library resolution and inspection's arch rule read. */

export const ELF_MAGIC = 0x7f454c46;

export interface ElfHeader {
  bits: 32 | 64;
  little: boolean;
  /** e_type: 1 relocatable, 2 executable, 3 shared object (or PIE executable), 4 core. */
  type: number;
  /** e_machine: 62 x86-64, 183 aarch64… */
  machine: number;
}

/** The header at the start of `h`, or undefined when `h` is not ELF (too short, no magic, an unknown class or byte order). */
export function readElfHeader(h: Buffer): ElfHeader | undefined {
  if (h.length < 20 || h.readUInt32BE(0) !== ELF_MAGIC) return undefined;
  const [cls, data] = [h[4], h[5]];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) return undefined;
  const little = data === 1;
  const u16 = (o: number) => (little ? h.readUInt16LE(o) : h.readUInt16BE(o));
  return { bits: cls === 2 ? 64 : 32, little, type: u16(16), machine: u16(18) };
}
