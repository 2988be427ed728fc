/**
 * An operating system's files as it sees them: its root filesystem with the others its
 * fstab mounts spliced in at their mount points (/boot/efi, /srv…), as virt-ls and
 * virt-diff read a guest. Paths are the OS's ("/boot/efi/EFI/debian/grub.cfg"); each is
 * read from the filesystem that holds it, never outside that filesystem.
 */
import { isUtf8 } from 'node:buffer';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { basename, join } from 'node:path';
import { describeErrno, errnoCode } from '../errno.js';
import { ApplianceError, FilesystemError, ImageFileError } from '../errors.js';
import type { CopyOutOptions, CopyOutProgress, CopyOutResult } from './copy-out.js';
import { rootedPath, walkCounter, type Lineage, type MountedFilesystem, type WalkOptions } from './filesystem.js';
import { fileError } from './helper.js';
import type { Name } from './probe/types.js';
import type { FileStat, WalkError } from './records.js';

/** What a diff or a listing reads: one filesystem, or an OS's tree of them. */
export interface FileTree {
  walk(path?: Name, opts?: WalkOptions): AsyncGenerator<FileStat>;
  checksum(path: Name): Promise<string>;
  /** What tells whether `path` and a file of another tree are one file untouched (MountedFilesystem.lineage); without it, never. */
  lineage?(path: Name): Lineage;
}

export interface Mount {
  /** Where in the OS ("/", "/boot/efi"). */
  mountpoint: string;
  fs: MountedFilesystem;
}

/** A filesystem the OS mounts that could not be mounted: where, and why (EMOUNT with the kernel's words, or ENOFS). */
export interface Unmounted {
  mountpoint: string;
  error: FilesystemError;
}

const bytes = (n: Name) => Buffer.from(n);
const DOT_DOT = Buffer.from('..');
/** Symlinks one resolution may go through before ELOOP, as Linux's MAXSYMLINKS. */
const SYMLINKS_MAX = 40;
/** A path's components, without the empty ones and ".". */
const components = (p: Buffer): Buffer[] =>
  p
    .toString('latin1')
    .split('/')
    .filter((c) => c && c !== '.')
    .map((c) => Buffer.from(c, 'latin1'));
const joined = (parts: Buffer[]): Buffer => Buffer.concat([Buffer.from('/'), ...parts.flatMap((c, i) => (i ? [Buffer.from('/'), c] : [c]))]);

/** An error about the path a walk or a copy started from (`inner`, in its filesystem), naming the path as the caller gave it. */
function namedAsGiven(err: unknown, inner: Buffer, given: Name): unknown {
  return err instanceof ImageFileError && Buffer.from(err.path).equals(inner) ? fileError(err.errno, given) : err;
}

/** A walk's entries, its error about where it started named as the caller gave it (namedAsGiven). */
async function* walkNamedAsGiven(walk: AsyncGenerator<FileStat>, inner: Buffer, given: Name): AsyncGenerator<FileStat> {
  try {
    yield* walk;
  } catch (err) {
    throw namedAsGiven(err, inner, given);
  }
}

/** A filesystem that mounts, but not where its OS's fstab puts it: no folder there (ENOENT), a file (ENOTDIR), a symlink loop. */
function notThere(fs: MountedFilesystem, errno: number): FilesystemError {
  const why =
    errno === osConstants.errno.ENOTDIR
      ? `${errnoCode(errno)}: the OS has a file there, not a folder`
      : errno === osConstants.errno.ENOENT
        ? `${errnoCode(errno)}: the OS has no folder there`
        : describeErrno(errno);
  return new FilesystemError('EMOUNT', (w) => `cannot mount ${w.fs(fs.info.id)} (${fs.info.type}, read-only) there: ${why}`);
}

/** Why an unmounted filesystem's mount point shows the folder beneath it, in words that need no name for the filesystem. */
export function unmountedReason(u: Unmounted): string {
  return u.error.inWords({ fs: () => 'its filesystem', selector: (text) => text }).split('\n')[0]!;
}

/** The totals of two copies. */
function sum(a: CopyOutProgress, b: CopyOutProgress): Omit<CopyOutProgress, 'path'> {
  return {
    files: a.files + b.files,
    dirs: a.dirs + b.dirs,
    symlinks: a.symlinks + b.symlinks,
    hardlinks: a.hardlinks + b.hardlinks,
    specials: a.specials + b.specials,
    bytes: a.bytes + b.bytes,
  };
}

/** HOSTDIR/NAME made anew (NAME: the path's last component) for a mount point's contents. */
async function folderIn(hostDir: string, path: Buffer): Promise<string> {
  const dir = join(hostDir, basename(path.toString('utf8')));
  try {
    await mkdir(dir);
    return dir;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No host folder there: copyOut says so in its words.
    if (code === 'ENOENT' || code === 'ENOTDIR') return hostDir;
    throw new ApplianceError(
      code === 'EEXIST' ? 'EEXIST' : 'EINVAL',
      `${dir} ${code === 'EEXIST' ? 'exists already' : `cannot be made (${code})`}: copy-out makes every entry anew`,
    );
  }
}

/** Paths in tree order: component by component, names in byte order ("/a" < "/a/b" < "/a-b"), as a walk gives them. */
export function treeOrder(a: Buffer, b: Buffer): number {
  const [x, y] = [a.toString('latin1').split('/'), b.toString('latin1').split('/')];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = Buffer.compare(Buffer.from(x[i]!, 'latin1'), Buffer.from(y[i]!, 'latin1'));
    if (c) return c;
  }
  return x.length - y.length;
}
/** Whether `path` is `mountpoint` or below it ("/" holds everything). */
function within(path: Buffer, mountpoint: Buffer): boolean {
  if (mountpoint.length === 1) return true;
  return path.subarray(0, mountpoint.length).equals(mountpoint) && (path.length === mountpoint.length || path[mountpoint.length] === 0x2f);
}

export class OsTree implements FileTree {
  /** Deepest mount point first: the first that holds a path is its filesystem. */
  private readonly mounts: { at: Buffer; fs: MountedFilesystem }[];

  /**
   * `unmounted`: the OS's filesystems that could not be mounted, left out as libguestfs's
   * tools leave them: each mount point shows the folder beneath it, as the OS would show it
   * without that mount, and a walk or a copy that passes it says why (onError, `skipped`).
   */
  constructor(
    mounts: Mount[],
    readonly unmounted: readonly Unmounted[] = [],
  ) {
    this.mounts = mounts.map((m) => ({ at: Buffer.from(m.mountpoint), fs: m.fs })).sort((a, b) => b.at.length - a.at.length);
  }

  /**
   * An OS's filesystems where mount(8) puts them: mount points shortest first, as libguestfs
   * mounts them (fstab's order among equals), each resolved through the mounts made before it
   * as the kernel resolves it (its symlinks followed, ".." taken from what was reached), and
   * mounted only where that is a folder: one whose mount point is missing or not a folder is
   * left out, as mount(8) fails on it, what the OS has there (a file, a symlink) stays, and it
   * is said as an unmounted one is, unless its line is noauto (`noauto`: mount points the OS
   * does not mount when it starts). A second mount at one place covers the first. An unmounted
   * filesystem's mount point is resolved alike (its folder is where walks say why).
   */
  static async of(mounts: readonly Mount[], unmounted: readonly Unmounted[] = [], noauto: ReadonlySet<string> = new Set()): Promise<OsTree> {
    const shortestFirst = <T extends { mountpoint: string }>(xs: readonly T[]) => [...xs].sort((a, b) => a.mountpoint.length - b.mountpoint.length);
    const placed: Mount[] = [];
    // Where a mount point is in the OS, or the errno mount(8) would fail with there.
    const place = async (mountpoint: string): Promise<string | number> => {
      if (mountpoint === '/') return '/';
      if (!placed.length) return osConstants.errno.ENOENT;
      const tree = new OsTree(placed);
      const at = await tree.resolve(mountpoint, true).catch((err: unknown) => (err instanceof ImageFileError ? err.errno : osConstants.errno.ELOOP));
      if (typeof at === 'number') return at;
      if (typeof at !== 'string') return osConstants.errno.EINVAL;
      const h = tree.holder(at);
      const type = (await h.fs.lstat(h.inner).catch(() => undefined))?.type;
      return type === 'dir' ? (rootedPath(at) as string) : type ? osConstants.errno.ENOTDIR : osConstants.errno.ENOENT;
    };
    const left: Unmounted[] = [];
    for (const m of shortestFirst(mounts)) {
      const at = await place(m.mountpoint);
      // Said where a walk passes it, as one that cannot be mounted is (mount(8) says why too);
      // unsaid for a noauto line, which the OS itself never mounts unasked.
      if (typeof at === 'number') {
        if (!noauto.has(m.mountpoint)) left.push({ mountpoint: m.mountpoint, error: notThere(m.fs, at) });
        continue;
      }
      const same = placed.findIndex((x) => x.mountpoint === at);
      if (same >= 0) placed.splice(same, 1);
      placed.push({ mountpoint: at, fs: m.fs });
    }
    for (const u of shortestFirst(unmounted)) {
      const at = await place(u.mountpoint);
      if (typeof at === 'string') left.push({ ...u, mountpoint: at });
    }
    return new OsTree(placed, left);
  }

  /**
   * Where `path` is (resolved as `resolve` does): its filesystem, the path in it, that
   * filesystem's mount point, and, when an unmounted filesystem's mount point is at or above
   * it, that one (the path is then read in the folder beneath it).
   */
  async locate(path: Name, follow = false): Promise<{ fs: MountedFilesystem; path: Name; mountpoint: string; unmounted?: Unmounted }> {
    const resolved = await this.resolve(path, follow);
    const h = this.holder(resolved);
    const r = bytes(resolved);
    const p = bytes(rootedPath(resolved));
    const under = this.unmounted.filter((u) => u.mountpoint.length > h.at.length && within(p, Buffer.from(u.mountpoint)));
    const unmounted = under.sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
    // The path in its filesystem, its trailing slash kept (what it names must be a folder).
    const trailing = r.length > 1 && r.at(-1) === 0x2f && h.inner.length > 1;
    const inner = trailing ? Buffer.concat([h.inner, Buffer.from('/')]) : h.inner;
    return {
      fs: h.fs,
      path: typeof path === 'string' && isUtf8(inner) ? inner.toString('utf8') : inner,
      mountpoint: h.at.toString('utf8'),
      ...(unmounted ? { unmounted } : {}),
    };
  }

  /**
   * What a walk or a copy of `p` (held by the filesystem at `at`) leaves out: the unmounted
   * filesystems at `p` or below it, or the one `p` is in, each with its mount point's path
   * (or `p`'s) and why.
   */
  private leftOut(p: Buffer, at: Buffer): { path: Buffer; reason: string }[] {
    return this.unmounted.flatMap((u) => {
      const m = Buffer.from(u.mountpoint);
      if (within(m, p)) return [{ path: m, reason: unmountedReason(u) }];
      return m.length > at.length && within(p, m) ? [{ path: p, reason: unmountedReason(u) }] : [];
    });
  }

  /** The filesystem that holds an OS path, and the path within it. */
  private holder(path: Name): { at: Buffer; fs: MountedFilesystem; inner: Buffer } {
    const p = bytes(rootedPath(path));
    const m = this.mounts.find((x) => within(p, x.at));
    if (!m) throw new Error(`no filesystem holds ${String(path)}: the OS has no "/"`);
    const inner = m.at.length === 1 ? p : p.subarray(m.at.length);
    return { ...m, inner: inner.length ? inner : Buffer.from('/') };
  }

  /**
   * An OS path as its kernel resolves it across mount points (path_resolution(7)): each
   * symlink on the way followed from the folder it is in, or from the OS's root when it is
   * absolute, into whichever filesystem it leads; ".." the parent of what was reached, not
   * of the text before it; a folder a filesystem is mounted on that filesystem's root (what
   * the mount hides is not reachable). The last component is followed too when `follow`
   * says so, or a trailing slash (which stays: a file so named is ENOTDIR). A component that
   * is not there, or not a folder, ends the resolution: the call on what is left says why
   * (ENOENT, ENOTDIR), as the kernel would.
   */
  async resolve(path: Name, follow = false): Promise<Name> {
    const given = bytes(rootedPath(path, 'keep'));
    let todo = components(given);
    const trailing = given.length > 1 && given.at(-1) === 0x2f;
    follow ||= trailing;
    let done: Buffer[] = [];
    for (let links = 0; todo.length;) {
      const c = todo.shift()!;
      if (c.equals(DOT_DOT)) {
        done.pop();
        continue;
      }
      const here = [...done, c];
      if (!todo.length && !follow) {
        done = here;
        break;
      }
      const h = this.holder(joined(here));
      const st = await h.fs.lstat(h.inner).catch(() => undefined);
      if (st?.type === 'dir') {
        done = here;
        continue;
      }
      if (st?.type !== 'symlink') {
        // Not there, or not a folder: the call on the rest says why (ENOENT, ENOTDIR).
        done = [...here, ...todo];
        break;
      }
      if (++links > SYMLINKS_MAX) throw fileError(osConstants.errno.ELOOP, path);
      const target = bytes(await h.fs.readlink(h.inner));
      if (target[0] === 0x2f) done = [];
      todo = [...components(target), ...todo];
    }
    // A trailing slash stays: what it names must be a folder (a file so named is ENOTDIR).
    const out = trailing && done.length ? Buffer.concat([joined(done), Buffer.from('/')]) : joined(done);
    return typeof path === 'string' && isUtf8(out) ? out.toString('utf8') : out;
  }

  /** The mount points below `p` (held at `at`), deepest first; `p` itself, if one, is the one holding it. */
  private mountsBelow(p: Buffer, at: Buffer): OsTree['mounts'] {
    return this.mounts.filter((m) => m.at.length > at.length && within(m.at, p.length === 1 ? at : p) && !m.at.equals(p));
  }

  /** An OS path as given: text stays text where it is UTF-8. */
  private static outer(at: Buffer, inner: Name): Name {
    if (at.length === 1) return inner;
    const joined = bytes(inner).length === 1 ? at : Buffer.concat([at, bytes(inner)]);
    return typeof inner === 'string' ? joined.toString('utf8') : joined;
  }

  /**
   * `path` and everything below it, in tree order (names in byte order in each folder), as
   * one filesystem's walk would be: each mount point given by the filesystem mounted there
   * (its own folder too, as the OS sees it) where its folder is in its parent's walk, and
   * what the mount hides left out. Errors below `path` go to onError with their OS path.
   */
  async *walk(path: Name = '/', opts: WalkOptions = {}): AsyncGenerator<FileStat> {
    const given = path;
    path = rootedPath(await this.resolve(path));
    const start = this.holder(path);
    const depth = opts.depth ?? Infinity;
    const p = bytes(path);
    // Mount points below the start (p itself, if one, is the start).
    const below = this.mountsBelow(p, start.at);
    const levels = (x: Buffer) => x.toString('latin1').split('/').filter(Boolean).length;
    const count = walkCounter(opts.onProgress);
    const onError = (e: WalkError) => {
      count.error(e.path);
      opts.onError?.(e);
    };
    const mounts = this.mounts;
    // An unmounted filesystem is said where the walk gives its mount point's folder (the start,
    // when it is in one); one whose mount point the OS lacks, after the walk, if within its depth.
    const leftOut = this.leftOut(p, start.at);
    const said = new Set<(typeof leftOut)[number]>();
    const say = (ob: Buffer, outer: Name) => {
      for (const l of leftOut) if (l.path.equals(ob) && !said.has(l) && said.add(l)) onError({ path: outer, errno: osConstants.errno.EIO, reason: l.reason });
    };
    async function* part(at: Buffer, fs: MountedFilesystem, from: Buffer): AsyncGenerator<FileStat> {
      const left = depth - (levels(OsTree.outer(at, from) as Buffer) - levels(p));
      if (left < 0) return;
      // The mounts this part holds directly (none between them and it), in tree order.
      const inside = (m: { at: Buffer }, outer: Buffer) => m.at.length > outer.length && within(m.at, outer);
      const children = below
        .filter((m) => inside(m, at) && !below.some((o) => o !== m && inside(o, at) && inside(m, o.at)))
        .sort((a, b) => treeOrder(a.at, b.at));
      const hidden = mounts.filter((m) => inside(m, at));
      const partOpts = { ...opts, depth: left, onProgress: undefined, onError: (e: WalkError) => onError({ ...e, path: OsTree.outer(at, e.path) }) };
      // A mount whose folder the parent has not (a noauto line for a folder the image lacks, a
      // symlink) is not there, as mount(8) would fail on it: it is left out.
      const present = new Set<string>();
      const mounted = (c: { at: Buffer; fs: MountedFilesystem }) => (present.has(c.at.toString('latin1')) ? part(c.at, c.fs, Buffer.from('/')) : []);
      for await (const s of fs.walk(from, partOpts)) {
        const outer = OsTree.outer(at, s.path);
        const ob = bytes(outer);
        if (s.type === 'dir' && children.some((c) => c.at.equals(ob))) present.add(ob.toString('latin1'));
        // A mount point's folder in the parent, and all below it, is the child's to give.
        if (hidden.some((m) => within(ob, m.at))) continue;
        while (children.length && treeOrder(children[0]!.at, ob) < 0) yield* mounted(children.shift()!);
        count.entry(outer);
        yield { ...s, path: outer };
        say(ob, outer);
      }
      for (const c of children) yield* mounted(c);
    }
    yield* walkNamedAsGiven(part(start.at, start.fs, start.inner), start.inner, given);
    for (const l of leftOut)
      if (levels(l.path) - levels(p) <= depth) say(l.path, typeof given === 'string' && isUtf8(l.path) ? l.path.toString('utf8') : l.path);
  }

  /**
   * Copies `path` as the OS has it into the host folder `hostDir` (MountedFilesystem.copyOut's
   * rules): each filesystem mounted below it copied into its mount point's folder, which its
   * parent's copy leaves empty (what the mount hides is not copied), shallowest first; a
   * mount point itself (/boot) becomes HOSTDIR/boot, as virt-copy-out makes it.
   */
  async copyOut(path: Name, hostDir: string, opts: CopyOutOptions = {}): Promise<CopyOutResult> {
    const given = path;
    path = rootedPath(await this.resolve(path));
    const start = this.holder(path);
    const p = bytes(path);
    const below = this.mountsBelow(p, start.at).reverse();
    // The mounts a part holds, as paths in its own filesystem: left empty by its copy.
    const hidden = (at: Buffer) =>
      below.filter((m) => m.at.length > at.length && within(m.at, at)).map((m) => (at.length === 1 ? m.at : m.at.subarray(at.length)));
    const into = start.inner.length === 1 && p.length > 1 ? await folderIn(hostDir, p) : hostDir;
    // The host folder that stands for `path`, which mount points below are placed relative to.
    const top = start.inner.length === 1 ? into : join(hostDir, basename(p.toString('utf8')));
    const total: CopyOutResult = { path: top, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, specials: 0, bytes: 0, skipped: [] };
    const progress = (base: CopyOutResult) => (opts.onProgress ? (x: CopyOutProgress) => opts.onProgress!({ ...x, ...sum(base, x) }) : undefined);
    // What a part could not copy, said with its OS path (its lines start with its own).
    const add = (r: CopyOutResult, at: Buffer) => {
      Object.assign(total, sum(total, r));
      total.skipped.push(...r.skipped.map((line) => (at.length > 1 && line.startsWith('/') ? `${at.toString('utf8')}${line}` : line)));
    };
    const first = await start.fs
      .copyOut(start.inner, into, { ...opts, hide: hidden(start.at), onProgress: progress({ ...total }) })
      .catch((err: unknown) => Promise.reject(namedAsGiven(err, start.inner, given)));
    add(first, start.at);
    // A path inside a filesystem is copied as HOSTDIR/NAME by that copy: its name as it made it (bytes where not UTF-8).
    if (start.inner.length > 1) total.path = first.path;
    // An unmounted filesystem's folder is copied as the OS shows it (what is beneath), and said.
    total.skipped.push(...this.leftOut(p, start.at).map((l) => `${l.path.toString('utf8')}: ${l.reason}`));
    const realTop = await realpath(top).catch(() => top);
    for (const m of below) {
      const rel = m.at.subarray(p.length === 1 ? 0 : p.length).toString('utf8');
      const dest = join(top, rel);
      // Not there when its parent has no folder for it (mount(8) would fail too, see walk),
      // nor through a symlink the image put on the way (it could lead out of the copy).
      if ((await realpath(dest).catch(() => undefined)) !== join(realTop, rel) || !(await lstat(dest)).isDirectory()) continue;
      add(await m.fs.copyOut('/', dest, { ...opts, hide: hidden(m.at), onProgress: progress({ ...total }) }), m.at);
    }
    return total;
  }

  checksum(path: Name): Promise<string> {
    const h = this.holder(path);
    return h.fs.checksum(typeof path === 'string' ? h.inner.toString('utf8') : h.inner);
  }

  lineage(path: Name): Lineage {
    return this.holder(path).fs.lineage();
  }
}
