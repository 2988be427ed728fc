/**
 * Turns a list of entries, in any order, into the inode graph the image holds: one node
 * per inode (hard links share one), parent directories synthesized where missing,
 * children sorted by name bytes, and inode numbers given in a deterministic order.
 *
 * Paths and names are held as latin1 strings: one character per byte, so any byte
 * sequence survives, string order is byte order, and a tree of 100,000 entries costs
 * no Buffer object per name.
 */
import { ApplianceError } from '../../errors.js';
import type { Entry, EntryType } from '../entry.js';
import { FAST_SYMLINK_MAX, LINK_MAX, LOST_FOUND_INO, LOST_FOUND_NAME, NAME_MAX, ROOT_INO } from './constants.js';

export interface DirChild {
  /** The name's bytes as a latin1 string. */
  name: string;
  node: Ext2Node;
}

export interface Ext2Node {
  /** 0 until numbered. */
  ino: number;
  type: EntryType;
  links: number;
  /** Files: content bytes; symlinks: target length; directories: set by the plan. */
  size: number;
  /** The first path (in sorted order) naming this inode, as a latin1 string, for messages. */
  path: string;
  /** Where the metadata comes from: the entry, or a shared stand-in for synthesized directories. */
  entry: Entry;
  /** Directories: entries other than "." and "..", sorted by name bytes once numbered. */
  children: DirChild[] | undefined;
  parent: Ext2Node | undefined;
}

/** An inode's metadata as stored: times clamped, owners squashed when asked. */
export interface InodeMeta {
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface NodeOptions {
  squashOwner: boolean;
  /** Times later than this are clamped to it (SOURCE_DATE_EPOCH). */
  clampTime?: number;
}

export interface NodeGraph {
  /** Indexed by inode number; reserved numbers other than 2 and 11 are empty. */
  byIno: (Ext2Node | undefined)[];
  root: Ext2Node;
  lostFound: Ext2Node;
  /** Highest inode number used. */
  lastIno: number;
  /** The metadata to store for a node (computed on use: nodes keep only a reference to their entry). */
  meta(node: Ext2Node): InodeMeta;
}

/** Inode times ext4 can store with the extra epoch bits: [-2^31, 2^34 - 2^31). */
const TIME_MIN = -(2 ** 31);
const TIME_MAX = 2 ** 34 - 2 ** 31 - 1;

const badTree = (message: string) => new ApplianceError('EBADTREE', message);

/** Printable form of a latin1 path for messages (bytes that are not UTF-8 become U+FFFD). */
export function showPath(path: string): string {
  return '/' + Buffer.from(path, 'latin1').toString('utf8');
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Anything that is not already "name/name/name": empty, "." or ".." parts, leading or trailing or doubled slashes, NUL. */
const UNUSUAL_PATH = /(^|\/)\.{1,2}(\/|$)|\/\/|^\/|\/$|\0/;

/** The entry's path as a normalized latin1 string ("" for the root). */
function pathKey(path: string | Buffer): string {
  let key: string;
  if (typeof path !== 'string') key = path.toString('latin1');
  else key = /^[\x00-\x7f]*$/.test(path) ? path : Buffer.from(path, 'utf8').toString('latin1');
  if (!UNUSUAL_PATH.test(key)) return key;
  const names = key.split('/').filter((n) => n !== '' && n !== '.');
  if (names.includes('..')) {
    throw badTree(`entry path ${JSON.stringify(String(path))} contains "..": give paths relative to the image root without ".."`);
  }
  if (key.includes('\0')) throw badTree(`entry path ${JSON.stringify(String(path))} contains a NUL byte`);
  return names.join('/');
}

/** Entries by their path's key, in directory order (parents first); a path given twice is refused. */
function sortedEntries(entries: readonly Entry[]): { key: string; entry: Entry }[] {
  const sorted = entries.map((entry) => ({ key: pathKey(entry.path), entry }));
  sorted.sort((a, b) => byName(a.key, b.key));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.key === sorted[i]!.key) throw badTree(`${showPath(sorted[i]!.key)} is listed twice: give each path once`);
  }
  return sorted;
}

/** Times as ext2 holds them: whole seconds, clamped to SOURCE_DATE_EPOCH when given and to what the format can say. */
function timeClamp(opts: NodeOptions): (t: number) => number {
  return (t) => {
    const whole = Math.floor(t);
    const clamped = opts.clampTime !== undefined ? Math.min(whole, opts.clampTime) : whole;
    return Math.max(TIME_MIN, Math.min(TIME_MAX, clamped));
  };
}

const dirNode = (path: string, entry: Entry, parent: Ext2Node | undefined): Ext2Node => ({
  ino: 0,
  type: 'dir',
  links: 0,
  size: 0,
  path,
  entry,
  children: [],
  parent,
});

/** The tree as it grows: the root and lost+found first, every node by path, hard links by their key. */
class Tree {
  readonly root: Ext2Node;
  readonly lostFound: Ext2Node;
  /** Sorted order puts every parent before its children. */
  private readonly byPath: Map<string, Ext2Node>;
  private readonly byLink = new Map<string, Ext2Node>();

  constructor(
    /** What folders nobody listed get: the latest time in the tree (reproducible, and plausible). */
    private readonly synthetic: Entry,
    private readonly opts: NodeOptions,
  ) {
    this.root = dirNode('', synthetic, undefined);
    this.root.ino = ROOT_INO;
    this.root.parent = this.root;
    this.lostFound = dirNode(LOST_FOUND_NAME, { ...synthetic, mode: 0o700 }, this.root);
    this.lostFound.ino = LOST_FOUND_INO;
    this.root.children!.push({ name: LOST_FOUND_NAME, node: this.lostFound });
    this.byPath = new Map([
      ['', this.root],
      [LOST_FOUND_NAME, this.lostFound],
    ]);
  }

  /** The folder at `path`, made (with its parents) if nobody listed it; `inside` is what asked, for the error. */
  private dirFor(path: string, inside: string): Ext2Node {
    const found = this.byPath.get(path);
    if (found) {
      if (found.type !== 'dir') throw badTree(`${showPath(path)} is a ${found.type} but ${showPath(inside)} is listed inside it`);
      return found;
    }
    const slash = path.lastIndexOf('/');
    const parent = this.dirFor(slash < 0 ? '' : path.slice(0, slash), inside);
    const dir = dirNode(path, this.synthetic, parent);
    parent.children!.push({ name: path.slice(slash + 1), node: dir });
    this.byPath.set(path, dir);
    return dir;
  }

  add(key: string, entry: Entry): void {
    const size = checkEntry(entry, key, this.opts);
    if (key === '' || key === LOST_FOUND_NAME) {
      if (entry.type !== 'dir') throw badTree(`${showPath(key)} must be a directory, not a ${entry.type}`);
      (key === '' ? this.root : this.lostFound).entry = entry;
      return;
    }
    const slash = key.lastIndexOf('/');
    const name = key.slice(slash + 1);
    if (name.length > NAME_MAX) {
      throw new ApplianceError('ENAMETOOLONG', `${showPath(key)}: the name is ${name.length} bytes, over the ext2 limit of ${NAME_MAX}: rename it`);
    }
    const parent = this.dirFor(slash < 0 ? '' : key.slice(0, slash), key);
    const linkKey = entry.type !== 'dir' ? entry.hardlinkKey : undefined;
    let node = linkKey !== undefined ? this.byLink.get(linkKey) : undefined;
    if (node && node.type !== entry.type) {
      throw badTree(`${showPath(key)} is a hard link of ${showPath(node.path)} but one is a ${entry.type} and the other a ${node.type}`);
    }
    if (!node) {
      const isDir = entry.type === 'dir';
      node = { ino: 0, type: entry.type, links: 0, size, path: key, entry, children: isDir ? [] : undefined, parent: isDir ? parent : undefined };
      if (linkKey !== undefined) this.byLink.set(linkKey, node);
    }
    this.byPath.set(key, node);
    parent.children!.push({ name, node });
  }
}

export function buildNodes(entries: readonly Entry[], opts: NodeOptions): NodeGraph {
  const sorted = sortedEntries(entries);
  const clamp = timeClamp(opts);
  let referenceTime = opts.clampTime ?? 0;
  if (opts.clampTime === undefined) {
    for (const { entry } of sorted) referenceTime = Math.max(referenceTime, clamp(entry.mtime));
  }
  const tree = new Tree({ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: referenceTime }, opts);
  for (const { key, entry } of sorted) tree.add(key, entry);
  const { byIno, lastIno } = number(tree.root);
  const meta = (node: Ext2Node): InodeMeta => {
    const e = node.entry;
    const mtime = clamp(e.mtime);
    return {
      mode: e.mode & 0o7777,
      uid: opts.squashOwner ? 0 : e.uid,
      gid: opts.squashOwner ? 0 : e.gid,
      atime: e.atime === undefined ? mtime : clamp(e.atime),
      mtime,
      ctime: e.ctime === undefined ? mtime : clamp(e.ctime),
    };
  };
  return { byIno, root: tree.root, lostFound: tree.lostFound, lastIno, meta };
}

/** Checks what the image cannot hold as given and returns the node size (file bytes, symlink target length). */
function checkEntry(entry: Entry, path: string, opts: NodeOptions): number {
  const where = showPath(path);
  if (!opts.squashOwner) {
    for (const [what, value] of [
      ['uid', entry.uid],
      ['gid', entry.gid],
    ] as const) {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw badTree(`${where}: ${what} ${value} is not a 32-bit id`);
    }
  }
  switch (entry.type) {
    case 'file': {
      const source = entry.source;
      const size = entry.size ?? (source?.kind === 'bytes' ? source.data.length : 0);
      if (!Number.isSafeInteger(size) || size < 0) throw badTree(`${where}: size ${size} is not a byte count`);
      if (source?.kind === 'bytes' && source.data.length !== size) {
        throw badTree(`${where}: size is ${size} but the given bytes are ${source.data.length}`);
      }
      if (!source && size > 0) throw badTree(`${where}: a file of ${size} bytes needs a content source`);
      return size;
    }
    case 'symlink': {
      const length = entry.target === undefined ? 0 : typeof entry.target === 'string' ? Buffer.byteLength(entry.target) : entry.target.length;
      if (length === 0) throw badTree(`${where}: a symlink needs a non-empty target`);
      return length;
    }
    case 'chardev':
    case 'blockdev': {
      const major = entry.rdevMajor ?? 0;
      const minor = entry.rdevMinor ?? 0;
      // Linux device numbers: 12-bit major, 20-bit minor.
      if (!Number.isInteger(major) || major < 0 || major > 0xfff || !Number.isInteger(minor) || minor < 0 || minor > 0xfffff) {
        throw badTree(`${where}: device ${major}:${minor} is outside Linux's 12-bit major, 20-bit minor range`);
      }
      return 0;
    }
    default:
      return 0;
  }
}

/** A symlink's target bytes. */
export function symlinkTarget(node: Ext2Node): Buffer {
  const target = node.entry.target!;
  return typeof target === 'string' ? Buffer.from(target, 'utf8') : target;
}

/**
 * Numbers inodes: root is 2 and lost+found 11; then each directory's children in name
 * order, before descending into its subdirectories (depth first), so a directory's
 * inodes sit together in the table and their data follows in the same order.
 */
function number(root: Ext2Node): { byIno: (Ext2Node | undefined)[]; lastIno: number } {
  const byIno: (Ext2Node | undefined)[] = [];
  byIno[ROOT_INO] = root;
  let next = LOST_FOUND_INO + 1;
  const stack: Ext2Node[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const children = dir.children!;
    children.sort((a, b) => byName(a.name, b.name));
    let subdirs = 0;
    for (const { node } of children) {
      node.links++;
      if (node.ino === 0) node.ino = next++;
      byIno[node.ino] = node;
      if (node.type === 'dir') subdirs++;
    }
    // "." and the parent's ".." entry, plus one ".." from each subdirectory.
    dir.links += 1 + subdirs + (dir === root ? 1 : 0);
    if (dir.links > LINK_MAX) throw badTree(`${showPath(dir.path)} has ${subdirs} subdirectories, over the ext2 limit of ${LINK_MAX - 2}`);
    for (let i = children.length - 1; i >= 0; i--) {
      const { node } = children[i]!;
      if (node.type === 'dir') stack.push(node);
    }
  }
  for (const node of byIno) {
    if (node && node.type !== 'dir' && node.links > LINK_MAX) {
      throw badTree(`${showPath(node.path)} has ${node.links} hard links, over the ext2 limit of ${LINK_MAX}`);
    }
  }
  return { byIno, lastIno: next - 1 };
}

/** Whether a symlink's target is kept in the inode (no data block). */
export function isFastSymlink(node: Ext2Node): boolean {
  return node.type === 'symlink' && node.size <= FAST_SYMLINK_MAX;
}
