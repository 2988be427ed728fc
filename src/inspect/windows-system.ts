/**
 * Windows installations among the inspected filesystems, as libguestfs finds them
 * (daemon/inspect_fs_windows.ml): a filesystem that is no other OS's root and holds a
 * system root (windows-root.ts), every path element matched in any ASCII case as its
 * case_sensitive_path does over ntfs-3g; then the facts its hives and cmd.exe give
 * (windows.ts, parsed on the host), as an OperatingSystem.
 */
import type { Disk } from './devices.js';
import type { MountedFilesystem } from './filesystem.js';
import type { OperatingSystem } from './os.js';
import type { Package } from './packages.js';
import type { FileStat } from './records.js';
import { windowsFacts, type DriveMapping, type WindowsFacts } from './windows.js';
import { BOOT_INI, bootIniSystemRoots, WINDOWS_READ_LIMITS, WINDOWS_SYSTEMROOTS, windowsPaths } from './windows-root.js';

/** Types a system root can be on: NTFS, and FAT for the old ones and ReactOS. */
export const WINDOWS_FS_TYPES = new Set(['ntfs', 'vfat', 'exfat']);

const lower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const baseName = (p: FileStat['path']) => {
  const s = Buffer.from(p).toString('utf8');
  return s.slice(s.lastIndexOf('/') + 1);
};

/** Case-insensitive lookups in one filesystem, each folder listed once. */
class NoCase {
  private readonly listed = new Map<string, Promise<FileStat[] | undefined>>();
  constructor(private readonly fs: MountedFilesystem) {}

  private list(dir: string): Promise<FileStat[] | undefined> {
    let l = this.listed.get(dir);
    if (!l) this.listed.set(dir, (l = this.fs.readdir(dir, { withFileTypes: true }).catch(() => undefined)));
    return l;
  }

  /** The path as the filesystem spells it, and what is there; undefined when an element is missing. */
  async resolve(path: string): Promise<{ path: string; type: FileStat['type'] } | undefined> {
    let at: { path: string; type: FileStat['type'] } = { path: '/', type: 'dir' };
    for (const part of path.split('/').filter(Boolean)) {
      if (at.type !== 'dir') return undefined;
      // First in byte order, as the helper lists a folder.
      const hit = (await this.list(at.path))?.find((e) => lower(baseName(e.path)) === lower(part));
      if (!hit) return undefined;
      at = { path: Buffer.from(hit.path).toString('utf8'), type: hit.type };
    }
    return at;
  }

  /** The path as spelled there when it is a folder. */
  async folder(path: string): Promise<string | undefined> {
    const r = await this.resolve(path);
    return r?.type === 'dir' ? r.path : undefined;
  }

  /** The path as spelled there when it is a regular file. */
  async file(path: string): Promise<string | undefined> {
    const r = await this.resolve(path);
    return r?.type === 'file' ? r.path : undefined;
  }

  /** is_systemroot: system32 and system32/config folders, system32/cmd.exe a file. */
  async isSystemRoot(root: string): Promise<boolean> {
    const p = windowsPaths(root);
    return Boolean((await this.folder(p.system32)) && (await this.folder(p.config)) && (await this.file(p.cmdExe)));
  }
}

/** The system root of a filesystem (as found: "/Windows"), from the usual places, then boot.ini's; undefined when it has none. */
async function systemRoot(fs: MountedFilesystem, nc: NoCase): Promise<string | undefined> {
  for (const p of WINDOWS_SYSTEMROOTS) {
    const found = await nc.resolve(p);
    if (found?.type === 'dir' && (await nc.isSystemRoot(found.path))) return found.path;
  }
  const ini = await nc.file(BOOT_INI);
  if (!ini) return undefined;
  const text = await fs.readFile(ini, { maxBytes: 64 * 1024 }).catch(() => undefined);
  for (const p of text ? bootIniSystemRoots(text.toString('latin1')) : []) if (await nc.isSystemRoot(p)) return p;
  return undefined;
}

/** Windows on `fs`, if it holds a system root: its facts and why any are missing. */
export async function findWindows(fs: MountedFilesystem): Promise<{ facts: WindowsFacts; errors: string[] } | undefined> {
  const nc = new NoCase(fs);
  const root = await systemRoot(fs, nc);
  if (!root) return undefined;
  const p = windowsPaths(root);
  const errors: string[] = [];
  const read = async (path: string, limit: number): Promise<Buffer | undefined> => {
    const at = await nc.file(path);
    return at ? (fs.readFile(at, { maxBytes: limit }).catch((err: Error) => void errors.push(`${path}: ${err.message}`)) ?? undefined) : undefined;
  };
  const [software, system, cmd] = [
    await read(p.software, WINDOWS_READ_LIMITS.hive),
    await read(p.system, WINDOWS_READ_LIMITS.hive),
    await read(p.cmdExe, 16 << 20),
  ];
  const result = windowsFacts({ systemRoot: root, software, system, cmdExe: cmd?.subarray(0, WINDOWS_READ_LIMITS.cmdExe) });
  return { facts: result.facts, errors: [...errors, ...result.errors] };
}

/** A drive letter's partition among the disks (libguestfs drops a letter that names none). */
function partitionOf(m: DriveMapping, disks: Disk[]): string | undefined {
  for (const d of disks) {
    const hit =
      m.kind === 'mbr'
        ? d.partitionTable?.type === 'dos' && d.partitionTable.id === m.diskSignature && d.partitions.find((p) => p.start === m.offset)
        : d.partitionTable?.type === 'gpt' && d.partitions.find((p) => p.uuid?.toLowerCase() === m.partitionGuid);
    if (hit) return `disk${d.index}:${hit.number}`;
  }
  return undefined;
}

/** The OS a Windows root is, in the fields virt-inspector prints, and its applications (its packages, when asked for). */
export function windowsSystem(rootId: string, facts: WindowsFacts, errors: string[], disks: Disk[]): { os: OperatingSystem; packages: Package[] } {
  const driveMappings: Record<string, string> = {};
  for (const m of facts.driveMappings) {
    const id = partitionOf(m, disks);
    if (id) driveMappings[m.letter] = id;
  }
  const packages: Package[] = facts.applications.map((a) => ({
    name: a.name,
    epoch: 0,
    version: a.version,
    release: '',
    arch: '',
    displayName: a.displayName,
    installPath: a.installPath,
    publisher: a.publisher,
    url: a.url,
    description: a.description,
    class: a.class,
  }));
  const os: OperatingSystem = {
    root: rootId,
    type: 'windows',
    distro: 'windows',
    productName: facts.productName,
    productVariant: facts.productVariant,
    version: facts.version,
    arch: facts.arch,
    hostname: facts.hostname,
    buildId: facts.buildId,
    osinfo: facts.osinfo,
    format: 'installed',
    windowsSystemroot: facts.systemRoot,
    windowsCurrentControlSet: facts.currentControlSet,
    windowsGroupPolicy: facts.groupPolicy,
    driveMappings,
    mountpoints: { '/': rootId },
    fstab: [{ mountpoint: '/', id: rootId }],
    unmatched: [],
    ...(errors.length ? { warnings: errors } : {}),
  };
  return { os, packages };
}
