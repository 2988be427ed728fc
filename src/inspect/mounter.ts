/**
 * Mounting an inspection's filesystems in the guest: each once, read-only, replaying
 * nothing (mounts.ts), on a folder of its own; many in one call to the guest. btrfs is the
 * exception: the kernel finds a btrfs filesystem's devices by its fsid, so btrfs ones are
 * mounted one at a time, the other devices of a multi-device one named (device=), and the
 * clones of one image (the same fsid and devid on two disks) take turns (turns.ts): every
 * read through a clone holds a lease on it, so it reads the disk it names and is never
 * unmounted under its reader.
 */
import { ApplianceError, FilesystemError, LIBRARY_FILESYSTEM_WORDS, type FilesystemWords } from '../errors.js';
import { describeErrno, errnoCode } from '../errno.js';
import { filesystemOf, type Probe } from './devices.js';
import type { Filesystem as ProbedFs } from './probe/types.js';
import type { Helper, MountResult } from './helper.js';
import type { FilesystemInfo } from './info.js';
import { mountDir, mountDriver, mountOptions } from './mounts.js';
import { Turns } from './turns.js';

/** A filesystem of the inspection, and where and whether it is mounted. */
export interface FsEntry {
  info: FilesystemInfo;
  /** Its block device's kernel name (vdb2, dm-0, md127). */
  device: string;
  /** Mount slot (mountDir). */
  slot: number;
  /** Settles with its folder once mounted (or with why it cannot be); unset while not mounted. */
  mounted?: Promise<string>;
  /** btrfs: the filesystem id (fsid) shared by its devices, and by an image's clones. */
  fsid?: string;
  /** When its superblock was last written, where the probe says (ext): see MountedFilesystem.lineage. */
  writtenAt?: number;
}

/** A mounted filesystem's folder, held until released (a clone's twin waits until then). */
export interface Lease {
  dir: string;
  release(): void;
}

const EINVAL = 22;

export class Mounter {
  private turns = new Turns<string>();

  constructor(
    private readonly helper: Helper,
    private readonly entries: () => FsEntry[],
    private readonly probes: () => Probe[],
  ) {}

  /** Whether `e` is a clone: another disk holds the same btrfs filesystem and device. */
  twinned(e: FsEntry): boolean {
    return e.fsid !== undefined && this.entries().some((x) => x.fsid === e.fsid && x.device !== e.device && this.devid(x.device) === this.devid(e.device));
  }

  /** `e` mounted, held until the lease is released; a clone waits for its turn (its twin unmounted). */
  async lease(e: FsEntry): Promise<Lease> {
    if (!this.twinned(e)) return { dir: await this.mounted(e), release: () => {} };
    const release = await this.turns.acquire(e.fsid!, e.device, (previous) => this.unmountDevice(previous));
    try {
      return { dir: await this.mounted(e), release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Mounts every filesystem of `list` that can be, and settles; clones one after the other
   * (each released at once: this tells their usage), those measured before left as they are.
   */
  async mountAll(list: FsEntry[]): Promise<void> {
    await this.mountMany(list.filter((e) => !this.twinned(e)));
    for (const e of list.filter((x) => this.twinned(x) && !x.info.error && x.info.used === undefined))
      await this.lease(e).then(
        (l) => l.release(),
        () => {},
      );
  }

  /** Mounts a filesystem once; a second call waits for the first. Not for clones outside a lease. */
  private mounted(e: FsEntry): Promise<string> {
    if (!e.mounted) void this.mountMany([e]);
    return e.mounted ?? Promise.reject(new ApplianceError('EMOUNT', `${e.info.id} (${e.info.type}): ${e.info.error}`));
  }

  /**
   * Mounts the filesystems of `list` not mounted yet: all but btrfs in one call to the
   * guest, btrfs ones one at a time after that. Each entry's `mounted` settles with its
   * folder, or its error (kept in its info).
   */
  private mountMany(list: FsEntry[]): Promise<unknown> {
    const todo = list.filter((e) => !e.mounted && !e.info.error);
    const pending = new Map(todo.map((e) => [e, deferred<string>()]));
    for (const [e, p] of pending) {
      e.mounted = p.promise;
      // A mount's refusal is in the info already (settle); any other failure (the helper's) in one line.
      p.promise.catch((err: unknown) => (e.info.error ??= (err as Error).message.split('\n')[0]));
    }
    const plain = todo.filter((e) => !e.fsid);
    const mounts = plain.map((e) => ({ device: `/dev/${e.device}`, dir: mountDir(e.slot), ...this.how(e, []) }));
    const batch = plain.length
      ? this.helper.mount(mounts).then(
          (results) => plain.forEach((e, i) => settle(e, mounts[i]!.type, results[i]!, pending.get(e)!)),
          (err: unknown) => plain.forEach((e) => pending.get(e)!.reject(err)),
        )
      : Promise.resolve();
    const btrfs = todo
      .filter((e) => e.fsid)
      .reduce(
        (chain, e) =>
          chain.then(async () => {
            try {
              const how = this.how(e, this.otherDevices(e));
              const [r] = await this.helper.mount([{ device: `/dev/${e.device}`, dir: mountDir(e.slot), ...how }]);
              settle(e, how.type, r!, pending.get(e)!);
            } catch (err) {
              pending.get(e)!.reject(err);
            }
          }),
        batch,
      );
    return btrfs.then(() => Promise.allSettled(todo.map((e) => e.mounted)));
  }

  /** mount(2)'s type (or the FUSE driver's) and options for an entry. */
  private how(e: FsEntry, extra: string[]): { type: string; options: string } {
    const how = mountOptions(e.info.type, this.probed(e.device)?.dirty)!;
    // Read-only is a mount flag (the helper sets it), not an option of the filesystem's.
    return { type: how.type, options: [how.options, ...(e.info.subvolume ? [`subvol=${e.info.subvolume}`] : []), ...extra].filter(Boolean).join(',') };
  }

  /** What probing found on a device (its superblock's say). */
  private probed(device: string): ProbedFs | undefined {
    const p = this.probes().find((q) => q.device.name === device);
    return p ? filesystemOf(p) : undefined;
  }

  private devid(device: string): number | undefined {
    return this.probed(device)?.devid;
  }

  /** The other devices of a multi-device btrfs (same fsid, another devid), named to the kernel: it does not scan. */
  private otherDevices(e: FsEntry): string[] {
    const mine = this.devid(e.device);
    return this.probes()
      .filter((p) => p.device.name !== e.device && filesystemOf(p)?.uuid === e.fsid && filesystemOf(p)?.devid !== mine)
      .map((p) => `device=/dev/${p.device.name}`);
  }

  /**
   * Ends a clone's turn: unmounts every filesystem on its device (its subvolumes too) and
   * makes the kernel forget the devices no mounted filesystem uses, so that the twin's
   * mount reads the twin. One that cannot be unmounted ends the change with an error.
   */
  private async unmountDevice(device: string): Promise<void> {
    const on = this.entries().filter((x) => x.device === device && x.mounted);
    await Promise.allSettled(on.map((x) => x.mounted));
    const results = await this.helper.umount(on.map((x) => mountDir(x.slot)));
    const failed = results.filter((r) => r.errno && r.errno !== EINVAL);
    for (const x of on) if (!failed.some((r) => r.dir === mountDir(x.slot))) x.mounted = undefined;
    if (failed.length) {
      throw new ApplianceError(
        'EMOUNT',
        `cannot unmount ${on.map((x) => x.info.id).join(', ')} to mount its clone: ${failed.map((r) => `${on.find((x) => mountDir(x.slot) === r.dir)?.info.id ?? r.dir}: ${errnoCode(r.errno)}`).join(', ')}`,
      );
    }
    await this.helper.btrfsForget();
  }
}

/** Words of a kernel line that tells a fault. */
const FAULT = /error|corrupt|fail|invalid|bad |can't|cannot|unable|mismatch|wrong|not (?:a|found|supported)|unsupported|unknown/i;

/**
 * What a mount that failed left in the kernel's log: its lines, and the one to say. Of the
 * driver's lines (a partition scan's may come first), the first that tells a fault, not
 * one it prints on every mount ("XFS (vdb): Mounting V5 filesystem in no-recovery mode…").
 */
export function mountLog(kernel: string | undefined): { lines: string[]; said?: string } {
  const lines = (kernel ?? '')
    .split(/\n|\\x0a| \/ /)
    .map((l) => l.trim())
    .filter(Boolean);
  const driver = lines.filter((l) => /^[\w-]+ \([\w.-]+\): |^[A-Z][\w-]*-fs\b/.test(l));
  return { lines, said: driver.find((l) => FAULT.test(l)) ?? driver[0] ?? lines[0] };
}

function settle(e: FsEntry, mountType: string, r: MountResult, p: Deferred<string>): void {
  if (r.errno) {
    // One line, the reason first and the driver's words after it; its whole log on the
    // lines below (the CLI prints them under --verbose).
    const { lines, said } = mountLog(r.kernel);
    const first = said ? `: ${mountDriver(mountType)} says "${said.length > 120 ? `${said.slice(0, 118)} …` : said}"` : '';
    const rest = lines.length > 1 || (said?.length ?? 0) > 120 ? `\n${lines.join('\n')}` : '';
    const errno = r.errno;
    const headline = (w: FilesystemWords) => `cannot mount ${w.fs(e.info.id)} (${e.info.type}, read-only): ${describeErrno(errno)}${first}`;
    // One line in the info; the driver's whole log beside it (the CLI prints it under --verbose).
    e.info.error ??= headline(LIBRARY_FILESYSTEM_WORDS);
    if (rest) e.info.mountLog ??= lines;
    p.reject(new FilesystemError('EMOUNT', (w) => `${headline(w)}${rest}`));
    return;
  }
  if (r.statfs) Object.assign(e.info, { used: r.statfs.size - r.statfs.free, available: r.statfs.available });
  p.resolve(r.dir);
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

/** Promise.withResolvers, which Node 20 lacks. */
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
