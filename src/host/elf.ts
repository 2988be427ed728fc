import { closeSync, existsSync, openSync, readSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, posix } from 'node:path';
import { readElfHeader } from '../formats/elf-header.js';

// ELF constants (elf(5)).
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/** What the dynamic loader needs to know about one ELF file. */
export interface ElfInfo {
  /** 32 or 64, and the machine: a library only satisfies an object of the same kind. */
  bits: 32 | 64;
  machine: number;
  interp?: string;
  needed: string[];
  rpath: string[];
  runpath: string[];
}

/** Where glibc looks after RPATH/RUNPATH and ld.so.cache on Debian's multiarch layout. */
export const DEFAULT_LIBRARY_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, position);
  return n === length ? buf : buf.subarray(0, n);
}

/** A NUL-terminated string at `position`, read in small pieces so a big string table is never loaded. */
function readCString(fd: number, position: number): string {
  const parts: Buffer[] = [];
  for (let chunk = 256; ; chunk *= 2) {
    const buf = readAt(fd, position, chunk);
    const end = buf.indexOf(0);
    if (end >= 0 || buf.length < chunk) {
      parts.push(end >= 0 ? buf.subarray(0, end) : buf);
      return Buffer.concat(parts).toString('utf8');
    }
    parts.push(buf);
    position += chunk;
  }
}

/** Readers of an ELF file's words in its byte order and word size. */
interface Words {
  bits: 32 | 64;
  u16: (b: Buffer, o: number) => number;
  u32: (b: Buffer, o: number) => number;
  u64: (b: Buffer, o: number) => number;
  word: (b: Buffer, o: number) => number;
}

function wordsOf(bits: 32 | 64, le: boolean): Words {
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  return { bits, u16: (b, o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o)), u32, u64, word: bits === 64 ? u64 : u32 };
}

interface Segments {
  loads: { vaddr: number; offset: number; filesz: number }[];
  dynamic?: { offset: number; size: number };
}

/** The program headers: the loadable segments and the dynamic one; the interpreter goes into `info`. */
function readSegments(fd: number, h: Buffer, w: Words, info: ElfInfo): Segments {
  const phoff = w.bits === 64 ? w.u64(h, 0x20) : w.u32(h, 0x1c);
  const phentsize = w.u16(h, w.bits === 64 ? 0x36 : 0x2a);
  const phnum = w.u16(h, w.bits === 64 ? 0x38 : 0x2c);
  const segments: Segments = { loads: [] };
  if (phnum === 0) return segments;
  const ph = readAt(fd, phoff, phentsize * phnum);
  for (let i = 0; i < phnum && (i + 1) * phentsize <= ph.length; i++) {
    const o = i * phentsize;
    const type = w.u32(ph, o);
    // Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz; Elf32_Phdr: type, offset, vaddr, paddr, filesz.
    const offset = w.bits === 64 ? w.u64(ph, o + 8) : w.u32(ph, o + 4);
    const vaddr = w.bits === 64 ? w.u64(ph, o + 16) : w.u32(ph, o + 8);
    const filesz = w.bits === 64 ? w.u64(ph, o + 32) : w.u32(ph, o + 16);
    if (type === PT_LOAD) segments.loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) segments.dynamic = { offset, size: filesz };
    else if (type === PT_INTERP) info.interp = readAt(fd, offset, filesz).toString('utf8').replace(/\0.*$/s, '');
  }
  return segments;
}

/** The dynamic section's DT_NEEDED, DT_RPATH and DT_RUNPATH strings, into `info`. */
function readDynamic(fd: number, { loads, dynamic }: Segments, w: Words, info: ElfInfo): void {
  if (!dynamic) return;
  const dyn = readAt(fd, dynamic.offset, dynamic.size);
  const entSize = w.bits === 64 ? 16 : 8;
  const strings: { tag: number; value: number }[] = [];
  let strtabVaddr: number | undefined;
  for (let o = 0; o + entSize <= dyn.length; o += entSize) {
    const tag = w.word(dyn, o);
    const value = w.word(dyn, o + entSize / 2);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtabVaddr = value;
    else if (tag === DT_NEEDED || tag === DT_RPATH || tag === DT_RUNPATH) strings.push({ tag, value });
  }
  if (strtabVaddr === undefined) return;
  // DT_STRTAB is an address: find the loadable segment holding it to get a file offset.
  const seg = loads.find((l) => strtabVaddr! >= l.vaddr && strtabVaddr! < l.vaddr + l.filesz);
  if (!seg) return;
  const strtab = strtabVaddr - seg.vaddr + seg.offset;
  for (const { tag, value } of strings) {
    const text = readCString(fd, strtab + value);
    if (tag === DT_NEEDED) info.needed.push(text);
    else (tag === DT_RPATH ? info.rpath : info.runpath).push(...text.split(':').filter(Boolean));
  }
}

/**
 * Reads an ELF file's program headers and dynamic section with positional reads:
 * the interpreter, DT_NEEDED, DT_RPATH and DT_RUNPATH. Returns undefined for a
 * file that is not ELF (a script, data).
 */
export function readElf(path: string): ElfInfo | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const h = readAt(fd, 0, 64);
    const header = readElfHeader(h);
    if (!header || h.length < (header.bits === 64 ? 64 : 52)) return undefined;
    const info: ElfInfo = { bits: header.bits, machine: header.machine, needed: [], rpath: [], runpath: [] };
    const w = wordsOf(header.bits, header.little);
    readDynamic(fd, readSegments(fd, h, w, info), w, info);
    return info;
  } finally {
    closeSync(fd);
  }
}

/**
 * The directories of /etc/ld.so.conf, in order, following `include` globs (sorted, as
 * ldconfig does). Missing files are fine: a host without ld.so.conf uses the defaults.
 */
export function readLdSoConf(path = '/etc/ld.so.conf', seen = new Set<string>()): string[] {
  if (seen.has(path) || !existsSync(path)) return [];
  seen.add(path);
  const dirs: string[] = [];
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const include = /^include\s+(.+)$/.exec(line);
    if (include) {
      for (const pattern of include[1]!.split(/\s+/)) {
        const abs = isAbsolute(pattern) ? pattern : join(dirname(path), pattern);
        for (const file of expandGlob(abs)) dirs.push(...readLdSoConf(file, seen));
      }
    } else if (!line.startsWith('hwcap ')) {
      dirs.push(...line.split(/[:\s,]+/).filter(Boolean));
    }
  }
  return dirs;
}

/** Expands `*` and `?` in the last path component only (what ld.so.conf includes use). */
function expandGlob(pattern: string): string[] {
  const dir = dirname(pattern);
  const base = posix.basename(pattern);
  if (!/[*?[]/.test(base)) return existsSync(pattern) ? [pattern] : [];
  const re = new RegExp(
    `^${base
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => re.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/** `$ORIGIN`, `$LIB` and `$PLATFORM` in an RPATH/RUNPATH entry, as ld.so expands them. */
function expandDst(dir: string, origin: string): string {
  return dir
    .replace(/\$(\{ORIGIN\}|ORIGIN)/g, origin)
    .replace(/\$(\{LIB\}|LIB)/g, 'lib/x86_64-linux-gnu')
    .replace(/\$(\{PLATFORM\}|PLATFORM)/g, 'x86_64');
}

export interface ElfClosure {
  /** Every ELF file reached (the inputs, their interpreters and libraries), in discovery order. */
  files: string[];
  /** Libraries no search path holds, with the object that needs them. */
  missing: { library: string; neededBy: string }[];
}

/**
 * The shared libraries a set of executables needs, found the way ld.so finds them:
 * the interpreter from PT_INTERP, then each DT_NEEDED searched in DT_RPATH (when the
 * object has no DT_RUNPATH; inherited from the objects that loaded it), DT_RUNPATH,
 * the ld.so.conf folders and the default folders. A candidate of another class or
 * machine (a 32-bit library in /usr/lib) is skipped, as ld.so does.
 */
export function elfClosure(paths: string[], searchDirs: string[]): ElfClosure {
  const files: string[] = [];
  const missing: ElfClosure['missing'] = [];
  const infoCache = new Map<string, ElfInfo | undefined>();
  const info = (p: string) => {
    if (!infoCache.has(p)) infoCache.set(p, readElf(p));
    return infoCache.get(p);
  };
  const added = new Set<string>();
  const add = (p: string) => {
    if (added.has(p)) return false;
    added.add(p);
    files.push(p);
    return true;
  };
  const isFile = (p: string) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };

  const visit = (path: string, inheritedRpath: string[]) => {
    const elf = info(path);
    if (!elf) return;
    const origin = dirname(path);
    if (elf.interp && isFile(elf.interp) && add(elf.interp)) visit(elf.interp, []);
    const rpath = elf.runpath.length > 0 ? [] : [...elf.rpath.map((d) => expandDst(d, origin)), ...inheritedRpath];
    const runpath = elf.runpath.map((d) => expandDst(d, origin));
    for (const lib of elf.needed) {
      let found: string | undefined;
      if (lib.includes('/')) {
        found = isFile(lib) ? lib : undefined;
      } else {
        for (const dir of [...rpath, ...runpath, ...searchDirs]) {
          const candidate = join(dir, lib);
          if (!isFile(candidate)) continue;
          const cand = info(candidate);
          if (cand && cand.bits === elf.bits && cand.machine === elf.machine) {
            found = candidate;
            break;
          }
        }
      }
      if (!found) {
        missing.push({ library: lib, neededBy: path });
        continue;
      }
      if (add(found)) visit(found, rpath);
    }
  };
  for (const p of paths) {
    if (add(p)) visit(p, []);
  }
  return { files, missing };
}

/** Library search folders: ld.so.conf's, then the defaults not already listed. */
export function librarySearchDirs(ldSoConf = '/etc/ld.so.conf'): string[] {
  const dirs = readLdSoConf(ldSoConf);
  for (const d of DEFAULT_LIBRARY_DIRS) if (!dirs.includes(d)) dirs.push(d);
  return dirs;
}
