/**
 * From the role of each filesystem to the operating systems, as libguestfs assembles them
 * (daemon/inspect.ml inspect_os): each root's fstab resolved; a CoreOS root given its
 * /usr; a BSD root's shadow on a primary partition dropped; a btrfs snapshot that repeats
 * its filesystem's root dropped; a Linux root given what its /usr (one its fstab mounts)
 * tells and it does not.
 */
import { mdadmArrays } from './mdadm.js';
import type { FilesystemInfo } from '../info.js';
import { bsdDevice, DEVICE_SPEC, fstabEntries, type FstabEntry } from './fstab.js';
import { ROLE_FILES, type FilesystemRole, type InspectionData } from './roles.js';
import type { Deployment } from './ostree.js';
import type { FileOf } from './release-files.js';

/** One line of a root's fstab as libguestfs keeps it: where, and the filesystem (our id) or, not found, the device as written. */
export interface FstabMount {
  mountpoint: string;
  id?: string;
  device?: string;
  /** A btrfs subvolume's subvol= as the line writes it ("/@/home"), where that is not its id's spelling: virt-inspector's names keep it. */
  subvol?: string;
  /** A noauto line: the OS does not mount it when it starts. */
  noauto?: true;
}

/** A filesystem whose role is known, with what locates it and its fstab. */
export interface Placed {
  info: Pick<FilesystemInfo, 'id' | 'type' | 'disk' | 'partition' | 'subvolume' | 'lv' | 'md'>;
  role: FilesystemRole;
  file: FileOf;
  fstab: FstabMount[];
  /** fstab lines with a device (or a network share) that is not among the filesystems. */
  unmatched: string[];
  /** An OSTree deployment: the folder of the filesystem that is the root. */
  deployment?: Deployment;
  /** Files of it that were not read, and why (too large). */
  warnings?: string[];
}

/** The filesystem (our id) an fstab line of root `rootId` names, if attached (looked for on the root's own disk first). */
export type FstabMatch = (entry: FstabEntry, rootId: string) => string | undefined;

/**
 * The name an fstab line's device is matched by: a BSD's translated to Linux's (libguestfs
 * keeps the translation even where no such device is), the Hurd's hdNsM tried as sdXM.
 */
function linuxName(spec: string, data: InspectionData): { named: string; tried: string } {
  if (data.fstab === 'bsd-fstab') {
    const named = bsdDevice(spec, data.type === 'netbsd') ?? spec;
    return { named, tried: named };
  }
  const hurd = data.type === 'hurd' ? /^\/dev\/hd(\d+)s(\d+)$/.exec(spec) : null;
  return { named: spec, tried: hurd ? `/dev/sd${String.fromCharCode(97 + Number(hurd[1]))}${hurd[2]}` : spec };
}

/** A root's (or /usr's) mount points, from where its data says they come. */
export function resolveFstab(id: string, data: InspectionData, file: FileOf, match: FstabMatch): { fstab: FstabMount[]; unmatched: string[] } {
  if (data.fstab === '/' || data.fstab === '/usr') return { fstab: [{ mountpoint: data.fstab, id }], unmatched: [] };
  if (data.fstab === 'none') return { fstab: [], unmatched: [] };
  const fstab: FstabMount[] = [];
  const unmatched: string[] = [];
  const arrays = data.type === 'linux' ? mdadmArrays(file) : new Map<string, string>();
  for (const e of fstabEntries(file(ROLE_FILES.fstab)?.toString('utf8') ?? '')) {
    const { named, tried: name } = linuxName(e.spec, data);
    // /dev/mdN: the array mdadm.conf gives that name, by its UUID (MDUUID= for the matcher).
    const array = /^\/dev\/md\d+$/.test(name) ? arrays.get(name) : undefined;
    const tried = array ? `MDUUID=${array}` : name;
    const root = e.spec === '/dev/root' || (data.fstab === 'bsd-fstab' && e.mountpoint === '/');
    const found = root ? id : DEVICE_SPEC.test(tried) ? match({ ...e, spec: tried }, id) : undefined;
    const subvol = e.options.find((o) => o.startsWith('subvol='))?.slice('subvol='.length);
    const written = found?.startsWith('btrfsvol:') && subvol !== undefined && !found.endsWith(`/${subvol}`) ? { subvol } : {};
    if (found) fstab.push({ mountpoint: e.mountpoint, id: found, ...written, ...(e.options.includes('noauto') ? { noauto: true as const } : {}) });
    else if (named.startsWith('/dev/')) fstab.push({ mountpoint: e.mountpoint, device: named });
    if (!found && e.mountpoint.startsWith('/') && (DEVICE_SPEC.test(named) || /^\/\/|:/.test(e.spec))) unmatched.push(`${e.spec} ${e.mountpoint}`);
  }
  // Several lines for "/": the first is kept (remove_duplicate_root_mountpoints).
  const firstRoot = fstab.findIndex((m) => m.mountpoint === '/');
  return { fstab: fstab.filter((m, i) => m.mountpoint !== '/' || i === firstRoot), unmatched };
}

/** The fields a root takes from its /usr where it has none. */
const MERGED = ['distro', 'packageFormat', 'packageManagement', 'productName', 'version', 'arch', 'hostname', 'buildId'] as const;

/** merge_inspection_data: what the parent does not know, it takes from the child; the child's fstab comes first. */
function merge(child: Placed, parent: Placed): void {
  const [c, p] = [child.role.data, parent.role.data];
  const taken: Partial<InspectionData> = Object.fromEntries(MERGED.filter((k) => p[k] === undefined && c[k] !== undefined).map((k) => [k, c[k]]));
  parent.role = { role: parent.role.role, data: { ...p, ...taken } };
  parent.fstab = [...child.fstab, ...parent.fstab];
}

/** collect_coreos_inspection_info: one CoreOS root takes the /usr with the highest version. */
function mergeCoreos(placed: Placed[]): Placed[] {
  const coreos = (p: Placed, role: 'root' | 'usr') => p.role.role === role && p.role.data.distro === 'coreos';
  const roots = placed.filter((p) => coreos(p, 'root'));
  const usrs = placed.filter((p) => coreos(p, 'usr'));
  // libguestfs gives up on the whole inspection with two CoreOS roots; we leave them as they are.
  if (roots.length !== 1 || usrs.length === 0) return placed;
  const v = (p: Placed) => p.role.data.version ?? { major: 0, minor: 0 };
  const [usr] = [...usrs].sort((a, b) => v(b).major - v(a).major || v(b).minor - v(a).minor);
  merge(usr!, roots[0]!);
  // libguestfs rebuilds its list as the root followed by the others in reverse order: the order its roots are printed in.
  return [roots[0]!, ...placed.filter((p) => !coreos(p, 'usr') && p !== roots[0]).reverse()];
}

const BSD = new Set(['freebsd', 'netbsd', 'openbsd']);

/** check_for_duplicated_bsd_root: a BSD root on a primary partition (of disks a–z) is a shadow when another root of its type exists. */
function dropBsdShadow(placed: Placed[]): Placed[] {
  const primary = placed.find(
    (p) => p.role.role === 'root' && BSD.has(p.role.data.type) && !p.info.subvolume && p.info.disk! < 26 && p.info.partition! >= 1 && p.info.partition! <= 4,
  );
  if (!primary) return placed;
  const shadowed = placed.some((p) => p !== primary && p.role.role === 'root' && p.role.data.type === primary.role.data.type);
  return shadowed ? placed.filter((p) => p !== primary) : placed;
}

/** check_for_duplicated_btrfs_snapshots_of_root: a subvolume's root that says what its filesystem's root says is a snapshot of it. */
function dropBtrfsSnapshots(placed: Placed[]): Placed[] {
  const same = (a: InspectionData, b: InspectionData) =>
    a.type === b.type &&
    a.distro === b.distro &&
    a.productName === b.productName &&
    a.version?.major === b.version?.major &&
    a.version?.minor === b.version?.minor;
  const parentOf = (p: Placed) => p.info.id.slice('btrfsvol:'.length, -(p.info.subvolume!.length + 1));
  const isSnapshot = (p: Placed) =>
    p.role.role === 'root' &&
    p.info.type === 'btrfs' &&
    p.info.subvolume !== undefined &&
    placed.some((q) => q.role.role === 'root' && q.info.type === 'btrfs' && !q.info.subvolume && q.info.id === parentOf(p) && same(p.role.data, q.role.data));
  return placed.filter((p) => !isSnapshot(p));
}

/** collect_linux_inspection_info: each non-CoreOS root takes what it lacks from the first /usr its fstab mounts. */
function mergeUsr(placed: Placed[]): void {
  for (const root of placed.filter((p) => p.role.role === 'root' && p.role.data.distro !== 'coreos')) {
    const usr = placed.find((p) => p.role.role === 'usr' && root.fstab.some((m) => m.id === p.info.id));
    if (usr) merge(usr, root);
  }
}

/** The roots, in the filesystems' order, after libguestfs's passes over the whole list. */
export function assembleRoots(placed: Placed[]): Placed[] {
  const kept = dropBtrfsSnapshots(dropBsdShadow(mergeCoreos(placed)));
  mergeUsr(kept);
  return kept.filter((p) => p.role.role === 'root');
}
