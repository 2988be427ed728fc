/**
 * The guest's inspect helper (src/guest/c/inspect/), run through a Vm: one typed method
 * per command of contract.ts's INSPECT_COMMAND. Paths go as bytes where their names are
 * not UTF-8.
 */
import { isUtf8 } from 'node:buffer';
import { constants as osConstants } from 'node:os';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplianceError, ImageFileError } from '../errors.js';
import { pathText } from '../printable.js';
import { describeErrno, errnoCode } from '../errno.js';
import {
  CAT_ERRNO_BASE,
  GUEST_PATH_MAX,
  MAX_PAYLOAD,
  PAYLOAD,
  RECORD_PATH_MAX,
  INSPECT_COMMAND,
  INSPECT_FIELD as F,
  INSPECT_PATH,
  READ_TYPES,
  WALK_DEPTH_ALL,
  WALK_FLAG,
} from '../guest/contract.js';
import type { Vm } from '../vm/index.js';
import type { Name, Range } from './probe/types.js';
import { complete, num, parseFields, text, WalkDecoder, type FileStat, type FileType, type WalkEvent } from './records.js';

export interface BlockDevice {
  /** Kernel name: vdb, vdb1, dm-0, md127. */
  name: string;
  /** major:minor */
  dev: string;
  size: number;
  readonly: boolean;
  /** Partitions: their number and where they start (bytes), and the disk they are on. */
  partition?: { number: number; start: number; parent: string };
  /** Whole disks: the virtio serial (disk0, disk1, …) and the logical sector size. */
  serial?: string;
  sectorSize?: number;
  /** Device-mapper devices (LVM, LUKS): their name and uuid (LVM-…, CRYPT-…). */
  dm?: { name: string; uuid?: string };
  /** md arrays: their level. */
  mdLevel?: string;
  /** What it is built from (dm and md): kernel names. */
  slaves: string[];
}

export interface MountResult {
  dir: string;
  errno: number;
  /** What the kernel (a FUSE driver: the program) said while the mount failed. */
  kernel?: string;
  /** A mounted filesystem's size and use. */
  statfs?: Statfs;
}

export interface Statfs {
  size: number;
  free: number;
  available: number;
  files: number;
  filesFree: number;
}

/** What the helper printed on stderr when it failed, as our error. */
function helperError(what: string, r: { exitCode: number | null; stderr: Buffer }): ApplianceError {
  const said = r.stderr.toString('utf8').trim().split('\n').at(-1) ?? '';
  return new ApplianceError('EINSPECT', `${what} failed in the guest (status ${r.exitCode}): ${said}`);
}

/** Bytes of arguments a request holds with room to spare: the frame less its head, the program's path, the command and their NULs. */
const ARGS_ROOM = MAX_PAYLOAD - PAYLOAD.EXEC_HEAD - 1024;

export class Helper {
  constructor(private readonly vm: Vm) {}

  private async run(command: (typeof INSPECT_COMMAND)[keyof typeof INSPECT_COMMAND], args: (string | Buffer)[], what: string): Promise<Buffer> {
    const r = await this.vm.exec([INSPECT_PATH, command, ...args], { label: what });
    if (r.exitCode !== 0) throw helperError(what, r);
    return r.stdout;
  }

  /**
   * A command over groups of arguments (a device and its range, a mount…) whose output is
   * one record after another: as many calls as it takes for each request to fit a frame,
   * their outputs joined. However many devices a hostile image makes, no request outgrows
   * the channel (E2BIG).
   */
  private async runGroups(command: (typeof INSPECT_COMMAND)[keyof typeof INSPECT_COMMAND], groups: (string | Buffer)[][], what: string): Promise<Buffer> {
    const outs: Buffer[] = [];
    let batch: (string | Buffer)[] = [];
    let size = 0;
    for (const g of groups) {
      const bytes = g.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
      if (batch.length && size + bytes > ARGS_ROOM) {
        outs.push(await this.run(command, batch, what));
        [batch, size] = [[], 0];
      }
      batch.push(...g);
      size += bytes;
    }
    if (batch.length) outs.push(await this.run(command, batch, what));
    return Buffer.concat(outs);
  }

  async devices(): Promise<BlockDevice[]> {
    return parseFields(await this.run(INSPECT_COMMAND.devices, [], 'listing the block devices')).map((f) => {
      const partition = num(f, F.partition);
      const dmName = text(f, F.dmName);
      const sectorSize = num(f, F.sectorSize);
      return {
        name: text(f, F.name) ?? '',
        dev: text(f, F.dev) ?? '',
        size: (num(f, F.sectors) ?? 0) * 512,
        readonly: text(f, F.ro) === '1',
        ...(partition !== undefined ? { partition: { number: partition, start: (num(f, F.start) ?? 0) * 512, parent: text(f, F.parent) ?? '' } } : {}),
        ...(text(f, F.serial) !== undefined ? { serial: text(f, F.serial) } : {}),
        ...(sectorSize !== undefined ? { sectorSize } : {}),
        ...(dmName !== undefined ? { dm: { name: dmName, uuid: text(f, F.dmUuid) } } : {}),
        ...(text(f, F.mdLevel) !== undefined ? { mdLevel: text(f, F.mdLevel) } : {}),
        slaves: text(f, F.slaves)?.split(',') ?? [],
      };
    });
  }

  /** The bytes of each range of each device, in order. */
  async read(reads: { device: string; ranges: Range[] }[]): Promise<Buffer[][]> {
    const groups = reads.flatMap((r) => r.ranges.map((g) => [`/dev/${r.device}`, String(g.offset), String(g.length)]));
    if (groups.length === 0) return [];
    const out = await this.runGroups(INSPECT_COMMAND.read, groups, 'reading the devices');
    return complete(out, (c) => reads.map((r) => r.ranges.map((g) => c.sized(g.length, 'a range'))));
  }

  async mount(mounts: { device: string; dir: string; type: string; options: string }[]): Promise<MountResult[]> {
    if (mounts.length === 0) return [];
    const groups = mounts.map((m) => [m.device, m.dir, m.type, m.options]);
    return parseFields(await this.runGroups(INSPECT_COMMAND.mount, groups, 'mounting')).map((f) => ({
      dir: text(f, F.dir) ?? '',
      errno: num(f, F.errno) ?? 0,
      kernel: text(f, F.kernel),
      statfs: statfsOf(f),
    }));
  }

  async umount(dirs: string[]): Promise<MountResult[]> {
    if (dirs.length === 0) return [];
    return parseFields(
      await this.runGroups(
        INSPECT_COMMAND.umount,
        dirs.map((d) => [d]),
        'unmounting',
      ),
    ).map((f) => ({ dir: text(f, F.dir) ?? '', errno: num(f, F.errno) ?? 0 }));
  }

  async statfs(dirs: string[]): Promise<(Statfs | undefined)[]> {
    if (dirs.length === 0) return [];
    return parseFields(
      await this.runGroups(
        INSPECT_COMMAND.statfs,
        dirs.map((d) => [d]),
        "reading the filesystems' sizes",
      ),
    ).map((f) => (num(f, F.errno) ? undefined : statfsOf(f)));
  }

  /**
   * The entries at and below `path` of the filesystem mounted at `root`, streamed:
   * `depth` 0 is `path` alone, 1 adds its entries, Infinity everything below; with
   * `content`, each regular file's data follows its entry (holes left out); with
   * `deferBig` too, a large file without holes is only marked (`deferred`): read it apart.
   */
  async *walk(
    root: string,
    path: Name,
    opts: { depth: number; hash?: boolean; follow?: boolean; content?: boolean; deferBig?: boolean; signal?: AbortSignal },
  ): AsyncGenerator<WalkEvent> {
    const on = { oneFs: true, hash: opts.hash, follow: opts.follow, content: opts.content, deferBig: opts.deferBig };
    const flags = (Object.keys(on) as (keyof typeof on)[]).map((k) => (on[k] ? WALK_FLAG[k] : '')).join('');
    const depth = String(Number.isFinite(opts.depth) ? opts.depth : WALK_DEPTH_ALL);
    fitsRecord(path);
    const s = this.vm.execStream([INSPECT_PATH, INSPECT_COMMAND.walk, root, path, flags, depth], {
      signal: opts.signal,
      maxBuffer: 1 << 20,
      label: `walking ${String(path)}`,
    });
    const stderr = tail(s.stderr);
    const decoder = new WalkDecoder(opts.content);
    let whole = false;
    try {
      for await (const chunk of s.stdout) yield* decoder.push(chunk as Buffer);
      decoder.end();
      whole = true;
    } finally {
      s.stdout.destroy();
      if (!whole) {
        // Left early (a checksum's one record, a caller's break, an error): the helper is
        // stopped, and its end, which nobody awaits now, must not reject unhandled.
        s.result.catch(() => {});
        s.kill();
      }
    }
    const r = await s.result;
    if (r.exitCode !== 0) throw helperError(`walking ${String(path)}`, { exitCode: r.exitCode, stderr: await stderr });
  }

  /**
   * lstat (or stat, with `follow`) of one path, with its sha256 with `hash`: its record, or
   * its errno as an error (with `hash`, also when its content cannot be read). The walk is
   * read to its end (one record): leaving it early would kill the helper, and with it the
   * server it runs in (contract.ts INSPECT_COMMAND.serve).
   */
  async stat(root: string, path: Name, opts: { follow?: boolean; hash?: boolean } = {}): Promise<FileStat> {
    let first: WalkEvent | undefined;
    let unhashed: number | undefined;
    for await (const e of this.walk(root, path, { depth: 0, ...opts })) {
      if (!first && e.kind !== 'data') first = e;
      // An error after the file's own record: its content could not be read for the hash.
      else if (e.kind === 'error') unhashed = e.error.errno;
    }
    if (first?.kind === 'error') throw fileError(first.error.errno, path);
    if (unhashed !== undefined) throw fileError(unhashed, path);
    if (first?.kind === 'entry') return first.stat;
    throw new ApplianceError('EPROTO', `the inspect helper gave no record for ${String(path)}`);
  }

  /** A regular file's content, streamed. */
  cat(root: string, path: Name, signal?: AbortSignal): { stream: Readable; done: Promise<void> } {
    fitsRecord(path);
    const s = this.vm.execStream([INSPECT_PATH, INSPECT_COMMAND.cat, root, path], { signal, label: `reading ${String(path)}` });
    const stderr = tail(s.stderr);
    const done = s.result.then(async (r) => {
      if (r.exitCode === 0) return;
      // The helper exits with CAT_ERRNO_BASE + the errno when the file cannot be read: said
      // as every file error is (musl's strerror has no words for some, e.g. EUCLEAN).
      if (r.exitCode !== null && r.exitCode > CAT_ERRNO_BASE) throw await this.unreadable(root, path, r.exitCode - CAT_ERRNO_BASE);
      let said = (await stderr)
        .toString('utf8')
        .trim()
        .replace(/^appliance-inspect: /, '');
      // It says "PATH: why": the path is said once, below.
      if (said.startsWith(`${String(path)}: `)) said = said.slice(String(path).length + 2);
      throw new ApplianceError('EINSPECT', `${pathText(path)}: ${said || `status ${r.exitCode}`}`);
    });
    return { stream: s.stdout, done };
  }

  /**
   * Why a file could not be read. What is not a regular file fails its open in ways that
   * name something else (a FIFO or socket EINVAL or ENXIO, a device node EACCES on the
   * nodev mount): such a one is named by its type, found by a stat on that error only.
   */
  private async unreadable(root: string, path: Name, errno: number): Promise<ImageFileError> {
    const { EINVAL, EACCES, ENXIO } = osConstants.errno;
    if (errno !== EINVAL && errno !== EACCES && errno !== ENXIO) return fileError(errno, path);
    const type = (await this.stat(root, path, { follow: true }).catch(() => undefined))?.type;
    const what = type && NOT_REGULAR[type];
    if (!what) return fileError(errno, path);
    return new ImageFileError('EINVAL', `${pathText(path)}: EINVAL: a ${what}, not a regular file: it has no content to read`, EINVAL, path);
  }

  /**
   * A regular file the walk has just listed, read by the agent itself (its file reads
   * splice to the port, ~3x faster than a command's output): for large files. The walk
   * lstat'ed every folder on the way and the file, on a read-only mount, so the plain
   * path leads nowhere else; a name that is not UTF-8 cannot be one, and goes by `cat`, as
   * does a path longer than the agent's open takes (the helper opens it a piece at a time).
   */
  readWhole(root: string, path: Name, signal?: AbortSignal): Readable {
    const bytes = Buffer.from(path);
    if (isUtf8(bytes) && root.length + bytes.length < GUEST_PATH_MAX)
      return this.vm.readFileStream(`${root}${bytes.toString('utf8')}`, { signal, label: `reading ${String(path)}` });
    const out = new PassThrough();
    this.catInto(root, path, out, signal).then(
      () => out.end(),
      (err: unknown) => out.destroy(err as Error),
    );
    return out;
  }

  /** A regular file's content written into `out` (not ended): settles once the helper has said how it went. */
  async catInto(root: string, path: Name, out: Writable, signal?: AbortSignal): Promise<void> {
    const { stream, done } = this.cat(root, path, signal);
    await Promise.all([pipeline(stream, out, { end: false }), done]);
  }

  /**
   * Small files of one or more mounted filesystems in one call, each up to its group's `limit` bytes
   * (limit 'types': what each path is, not followed if a symlink: its FILE_TYPE letter, then a
   * symlink's target): per root, each path's bytes, or undefined where it is not there.
   */
  async readFiles(reads: { root: string; paths: string[]; limit: number | 'types' }[]): Promise<(Buffer | undefined)[][]> {
    if (reads.length === 0) return [];
    const out = await this.runGroups(
      INSPECT_COMMAND.readFiles,
      reads.map((r) => [r.limit === 'types' ? READ_TYPES : String(r.limit), r.root, String(r.paths.length), ...r.paths]),
      'reading files',
    );
    return complete(out, (c) =>
      reads.map((r) =>
        r.paths.map(() => {
          const errno = c.u32();
          const length = c.u64();
          const limit = r.limit === 'types' ? 1 + GUEST_PATH_MAX : r.limit;
          if (length > limit) throw new ApplianceError('EPROTO', `the inspect helper sent ${length} bytes of a file limited to ${limit}`);
          return errno ? undefined : Buffer.from(c.bytes(length));
        }),
      ),
    );
  }

  /** Makes the kernel forget btrfs devices no mounted filesystem uses (see c/inspect/btrfs.c). */
  async btrfsForget(): Promise<void> {
    await this.run(INSPECT_COMMAND.btrfsForget, [], 'forgetting btrfs devices');
  }
}

/**
 * A streamed command's stderr, read as it comes (an unread stream would hold the channel
 * back) and kept to its last 4 KiB: what the helper says when it fails.
 */
function tail(stream: Readable): Promise<Buffer> {
  let kept = Buffer.alloc(0);
  return new Promise((resolve) => {
    stream.on('data', (c: Buffer) => {
      kept = Buffer.concat([kept, c]);
      if (kept.length > 4096) kept = kept.subarray(kept.length - 4096);
    });
    stream.on('end', () => resolve(kept));
    stream.on('error', () => resolve(kept));
    stream.on('close', () => resolve(kept));
  });
}

function statfsOf(f: Map<string, Buffer>): Statfs | undefined {
  const unit = num(f, F.frsize);
  if (!unit) return undefined;
  return {
    size: (num(f, F.blocks) ?? 0) * unit,
    free: (num(f, F.bfree) ?? 0) * unit,
    available: (num(f, F.bavail) ?? 0) * unit,
    files: num(f, F.files) ?? 0,
    filesFree: num(f, F.ffree) ?? 0,
  };
}

/** A path longer than a walk record holds is one no walk reaches: refused before the guest is asked. */
function fitsRecord(path: Name): void {
  if (Buffer.byteLength(path) >= RECORD_PATH_MAX) throw fileError(osConstants.errno.ENAMETOOLONG, path);
}

/** The types of file that have no content to read, as an error names them. */
export const NOT_REGULAR: Partial<Record<FileType, string>> = { fifo: 'FIFO', socket: 'socket', chardev: 'character device', blockdev: 'block device' };

/** A file's errno in the guest as our error, naming the path. */
export function fileError(errno: number, path: Name): ImageFileError {
  const code = errnoCode(errno);
  return new ImageFileError(code === 'EGUEST' ? 'EINSPECT' : code, `${pathText(path)}: ${describeErrno(errno)}`, errno, path);
}
