/**
 * The architecture of an OS as libguestfs tells it (inspect_fs_unix.ml check_architecture,
 * filearch.ml): the first of a few programs that is an ELF executable, shared object or
 * relocatable file, named as `file` names its machine and then canonicalised (x86-64 →
 * x86_64, "ARM aarch64" → aarch64…); a machine libguestfs has no name for keeps `file`'s.
 */
import { readElfHeader } from '../../formats/elf-header.js';

/** The programs tried, in order (arch_binaries). */
export const ARCH_PROGRAMS = ['/bin/bash', '/bin/ls', '/bin/echo', '/bin/rm', '/bin/sh'];

/** What of each program is read: the ELF header's identification, type and machine fit in 20 bytes. */
export const ELF_HEADER_BYTES = 64;

/**
 * By e_machine: libguestfs's name (a function of the word size and byte order where it
 * depends on them), or `file`'s own for the machines libguestfs leaves as `file` says.
 */
const MACHINES: Record<number, string | ((bits: 32 | 64, little: boolean) => string)> = {
  2: 'SPARC',
  3: 'i386',
  4: 'Motorola m68k',
  6: 'i386', // Intel 80486
  8: 'MIPS',
  15: 'PA-RISC',
  18: 'sparc', // SPARC32PLUS
  20: 'ppc',
  21: (_bits, little) => (little ? 'ppc64le' : 'ppc64'),
  22: (bits) => (bits === 64 ? 's390x' : 's390'),
  40: 'arm',
  42: 'Renesas SH',
  43: 'sparc64',
  50: 'ia64',
  62: 'x86_64',
  183: 'aarch64',
  243: (bits) => `riscv${bits}`,
  258: (bits) => `loongarch${bits}`,
  0x9026: 'Alpha (unofficial)',
};

/** ELF types `file` calls relocatable, executable and shared object (or pie executable): the ones libguestfs accepts. */
const PROGRAM_TYPES = new Set([1, 2, 3]);

/** The architecture an ELF header names; undefined for anything else (a script, a core file, a machine not in the table). */
export function elfArch(h: Buffer | undefined): string | undefined {
  const e = h && readElfHeader(h);
  if (!e || !PROGRAM_TYPES.has(e.type) || !Object.hasOwn(MACHINES, e.machine)) return undefined;
  const name = MACHINES[e.machine]!;
  return typeof name === 'string' ? name : name(e.bits, e.little);
}

/** check_architecture: the first of ARCH_PROGRAMS whose header names one (`header(path)`: its first bytes, undefined where it is not a file). */
export const archOf = (header: (path: string) => Buffer | undefined): string | undefined =>
  ARCH_PROGRAMS.map((p) => elfArch(header(p))).find((a) => a !== undefined);
