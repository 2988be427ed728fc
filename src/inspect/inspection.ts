/**
 * An inspection of disk images: a VM with the images attached read-only and what they
 * hold — disks, partitions, volumes, filesystems, operating systems — found on demand and
 * kept, each filesystem mounted once (read-only, replaying nothing) when first needed.
 */
import { stat } from 'node:fs/promises';
import { ApplianceError, DiskRefusedError, FilesystemError } from '../errors.js';
import { boot, callSignal, checkNumber, detectDiskFormat, diskSpecs, type BootOptions, type DiskSpec, type Vm } from '../vm/index.js';
import { disksOf, ownPartitions, filesystemOf, memberOf, probeDevices, probeTargets, type Disk, type Probe } from './devices.js';
import { OsTree, type FileTree, type Mount, type Unmounted } from './os-tree.js';
import { readRpmPackages } from './rpm-db.js';
import type { Package } from './packages.js';
import { findWindows, WINDOWS_FS_TYPES, windowsSystem } from './windows-system.js';
import { MountedFilesystem, type ReadFileOptions } from './filesystem.js';
import { Helper, type BlockDevice } from './helper.js';
import { mountOptions, unmountableReason } from './mounts.js';
import { detectSystems, osReads, packageList, packagesOf, type FstabEntry, type OperatingSystem } from './os.js';
import { PACKAGE_DATABASES, PACMAN_LOCAL, readPacmanPackages } from './packages.js';
import type { Name } from './probe/types.js';
import type { FilesystemInfo } from './info.js';
import { Mounter, type FsEntry, type Lease } from './mounter.js';
import { mdUuid } from './os/mdadm.js';
import { resolveFilesystem } from './selector.js';
import { assembleVolumes, duplicatedMembers, btrfsSubvolumes, type LuksKeys, type LuksOptions, type VolumeReport } from './volumes.js';

export type { FilesystemInfo } from './info.js';

/**
 * Filesystems that cannot hold a Linux root (no owners, modes or symlinks): a Unix OS is
 * not looked for there (their files are read only for Windows: withWindows).
 */
const NEVER_A_ROOT = new Set(['vfat', 'exfat', 'ntfs']);

/** Package lists read ahead with the OS files: enough for any real one (a Debian desktop's dpkg status is ~3 MB). */
const PREFETCH_LIMIT = 16 << 20;
/** A package list read on its own. */
const PACKAGES_LIMIT = 256 << 20;
const PACKAGE_LISTS = PACKAGE_DATABASES.flatMap((d) => (d.list ? [d.list] : []));

/** Layers of volumes assembled one inside another at most (a crafted image could nest without end). */
const VOLUME_LAYERS_MAX = 8;
const isMember = (p: Probe) => memberOf(p) !== undefined;

export interface InspectOptions extends Pick<
  BootOptions,
  'cacheDir' | 'accel' | 'machine' | 'qemu' | 'bootTimeoutMs' | 'memoryMb' | 'log' | 'onConsole' | 'snapshot' | 'signal' | 'timeoutMs'
> {
  /** Keys of LUKS containers: by the container's UUID, or "*" for any (a list: each tried in turn). */
  keys?: LuksKeys;
  /**
   * How long one key may take to open a container (default LUKS_KEY_TIMEOUT_MS, 5 minutes):
   * the key's derivation is what the header asks for, and a hostile one asks for hours.
   * Past it the container stays locked and `volumes().errors` says why.
   */
  keyTimeoutMs?: number;
}

export class Inspection {
  private devices: BlockDevice[] = [];
  private probes: Probe[] = [];
  private entries: FsEntry[] = [];
  private report: VolumeReport = { lvm: [], md: [], luks: [], errors: [] };
  /** Volume members found on two disks (cloned images): left unassembled (volumes.ts). */
  private clones: string[] = [];
  private diskList: Disk[] = [];
  private osList?: Promise<OperatingSystem[]>;
  /** Package lists read with the OS files, by filesystem id and path (undefined: not there). */
  private readonly prefetched = new Map<string, Map<string, Buffer | undefined>>();
  /** Each Windows root's applications, read with its facts (its SOFTWARE hive): its packages when asked for. */
  private readonly windowsApps = new Map<string, Package[]>();
  /** Subvolumes an fstab names that are not there, by the id matchEntry gave them: their subvol= names. */
  private readonly missingSubvolumes = new Map<string, string>();
  /** Each OS's tree, by its root's id (osTree). */
  private readonly osTrees = new Map<string, Promise<OsTree>>();
  private subvolumesListed = false;
  private closed = false;
  private slots = 0;
  private readonly mounter: Mounter;

  private constructor(
    readonly vm: Vm,
    private readonly helper: Helper,
    private readonly images: { path: string; format: string; identity?: string }[],
  ) {
    this.mounter = new Mounter(
      helper,
      () => this.entries,
      () => this.probes,
    );
  }

  /** @internal */
  static async open(disks: (string | DiskSpec)[], opts: InspectOptions = {}): Promise<Inspection> {
    const specs = diskSpecs(disks);
    if (specs.length === 0) throw new ApplianceError('EINVAL', 'inspect needs at least one disk image');
    checkNumber('keyTimeoutMs', opts.keyTimeoutMs, 1, 2 ** 31 - 1, false);
    // One bound on the whole call, the boot and the scan after it (a LUKS key's derivation can take minutes).
    const signal = callSignal(opts);
    // Always read-only; a path alone is qcow2 or raw as its header says (any other format
    // must be named). The header is read once: it also names what `auto` attaches.
    const images = await Promise.all(
      specs.map(async (d) => {
        const spec: DiskSpec = { ...d, readonly: true };
        const named =
          spec.format === undefined || spec.format === 'auto' || spec.format === 'raw' ? await detectDiskFormat(spec.path).catch(() => undefined) : undefined;
        // A path, or { path } alone: qcow2 or raw, as its header says.
        if (spec.format === undefined && named === 'qcow2') spec.format = 'qcow2';
        // raw over an image whose header names a format would read its container as a disk: nothing found, nothing said.
        if (spec.format === 'raw' && named !== undefined && named !== 'raw')
          throw new DiskRefusedError(
            'EDISKFORMAT',
            spec.path,
            (w) =>
              `disk ${spec.path} has a ${named} header: give ${w.format(spec.path, named)} to inspect it (as raw, its container would be read as the disk)`,
          );
        return { spec, format: spec.format === 'auto' ? (named ?? 'raw') : (spec.format ?? 'raw') };
      }),
    );
    const { keys, keyTimeoutMs, ...bootOpts } = opts;
    const vm = await boot({ ...bootOpts, signal, timeoutMs: undefined, disks: images.map((i) => i.spec) });
    try {
      const img = new Inspection(
        vm,
        new Helper(vm),
        await Promise.all(
          images.map(async (i) => {
            const st = await stat(i.spec.path).catch(() => undefined);
            return { path: i.spec.path, format: i.format, ...(st ? { identity: `${st.dev}:${st.ino}` } : {}) };
          }),
        ),
      );
      await untilAborted(img.scan({ keys, timeoutMs: keyTimeoutMs }), signal);
      return img;
    } catch (err) {
      await vm.close();
      throw err;
    }
  }

  /** Finds the disks' partitions, assembles volumes, and lists every filesystem. */
  private async scan(luks: LuksOptions): Promise<void> {
    // Everything in one round; then the disks' tables, as we read them, say which of the
    // kernel's partitions are real (a hostile table makes it list hundreds).
    const all = await this.helper.devices();
    const probed = await probeDevices(this.helper, probeTargets(all), all);
    this.devices = ownPartitions(all, probed);
    this.probes = probed.filter((p) => this.devices.includes(p.device));
    // Volumes in volumes, as libguestfs assembles them (LVM on LUKS, LUKS on an LV, LVM on
    // md…): each round assembles what the last one found, until nothing new appears.
    let fresh = this.probes;
    for (let layer = 0; layer < VOLUME_LAYERS_MAX && fresh.some(isMember); layer++) {
      const on = (name: string) => {
        const d = this.devices.find((x) => x.name === name);
        return d && this.where(d)?.id;
      };
      const members = fresh.filter(isMember);
      this.clones.push(...duplicatedMembers(members));
      const found = await assembleVolumes(this.vm, members, luks, this.report.md.length, (name) => on(name) ?? name);
      this.report = {
        lvm: [...this.report.lvm, ...found.lvm],
        md: [...this.report.md, ...found.md],
        luks: [...this.report.luks, ...found.luks.map((l) => ({ ...l, ...(on(l.device) ? { on: on(l.device) } : {}) }))],
        errors: [...this.report.errors, ...found.errors],
      };
      const before = new Set(this.devices.map((d) => d.name));
      this.devices = ownPartitions(await this.helper.devices(), this.probes);
      const added = probeTargets(this.devices).filter((d) => !before.has(d.name));
      fresh = await probeDevices(this.helper, added, this.devices);
      this.probes.push(...fresh);
    }
    this.diskList = disksOf(this.devices, this.probes, this.images);
    this.entries = this.probes.flatMap((p) => this.entryOf(p)).sort((a, b) => byId(a.info, b.info));
  }

  private entryOf(p: Probe): FsEntry[] {
    const fs = filesystemOf(p);
    if (!fs) return [];
    const where = this.where(p.device);
    if (!where) return [];
    const info: FilesystemInfo = {
      id: where.id,
      type: fs.type,
      ...(fs.label !== undefined && fs.label !== '' ? { label: fs.label } : {}),
      ...(fs.uuid ? { uuid: fs.uuid } : {}),
      size: fs.size ?? p.device.size,
      ...(fs.dirty ? { dirty: true } : {}),
      ...where.at,
    };
    if (!mountOptions(fs.type)) info.error = unmountableReason(fs.type);
    return [
      {
        info,
        device: p.device.name,
        slot: this.slots++,
        ...(fs.type === 'btrfs' && fs.uuid ? { fsid: fs.uuid } : {}),
        ...(fs.writtenAt !== undefined ? { writtenAt: fs.writtenAt } : {}),
      },
    ];
  }

  /** A device's id and place: a disk, a partition, a logical volume, an md array, a LUKS container. */
  private where(d: BlockDevice): { id: string; at: Partial<FilesystemInfo> } | undefined {
    const disk = (name: string) => this.devices.find((x) => x.name === name)?.serial?.match(/^disk(\d+)$/)?.[1];
    if (d.serial) {
      const i = disk(d.name);
      return i === undefined ? undefined : { id: `disk${i}`, at: { disk: Number(i) } };
    }
    if (d.partition) {
      const i = disk(d.partition.parent);
      if (i !== undefined) return { id: `disk${i}:${d.partition.number}`, at: { disk: Number(i), partition: d.partition.number } };
      // A partition of an md array (md127p1) goes by its kernel name, as its array does.
      return /^md\d+$/.test(d.partition.parent) ? { id: `md:${d.name}`, at: { md: d.name } } : undefined;
    }
    if (d.dm?.uuid?.startsWith('LVM-')) {
      const lv = this.report.lvm.flatMap((g) => g.lvs.map((l) => `${g.vg}/${l}`)).find((n) => lvDmName(n) === d.dm!.name);
      return lv ? { id: lv, at: { lv } } : undefined;
    }
    if (d.dm?.uuid?.startsWith('CRYPT-')) return { id: `luks:${d.dm.name.replace(/^luks-/, '')}`, at: {} };
    if (d.mdLevel !== undefined) return { id: `md:${d.name}`, at: { md: d.name } };
    return undefined;
  }

  /** Each disk: its size, partition table and partitions. */
  disks(): Disk[] {
    return this.diskList;
  }

  /** LVM, md and LUKS volumes assembled (read-only), and what could not be. */
  volumes(): VolumeReport {
    return this.report;
  }

  /**
   * Every filesystem: type, label, UUID, size; with `usage` (the default) each is mounted
   * to tell its used and free space, and btrfs subvolumes are listed as filesystems too.
   */
  async filesystems(opts: { usage?: boolean } = {}): Promise<FilesystemInfo[]> {
    if (opts.usage ?? true) {
      await this.mounter.mountAll(this.entries);
      await this.listSubvolumes();
      await this.mounter.mountAll(this.entries);
    }
    return this.entries.map((e) => e.info);
  }

  /** btrfs subvolumes, each a filesystem of its own (mounted with subvol=). */
  private async listSubvolumes(): Promise<void> {
    if (this.subvolumesListed) return;
    this.subvolumesListed = true;
    for (const e of this.entries.filter((x) => x.info.type === 'btrfs' && !x.info.subvolume && !x.info.error)) {
      const lease = await this.mounter.lease(e).catch(() => undefined);
      if (!lease) continue;
      const subvolumes = await btrfsSubvolumes(this.vm, lease.dir).finally(lease.release);
      for (const sub of subvolumes) {
        this.entries.push({
          info: { ...e.info, id: `btrfsvol:${e.info.id}/${sub}`, subvolume: sub, used: undefined, available: undefined },
          device: e.device,
          slot: this.slots++,
          fsid: e.fsid,
        });
      }
    }
  }

  /** The filesystem a selector names (see selector.ts), mounted, to read files from. */
  async mount(selector: string | number = ''): Promise<MountedFilesystem> {
    this.assertOpen();
    if (String(selector).includes('btrfsvol:')) await this.listSubvolumes();
    const info = resolveFilesystem(
      this.entries.map((e) => e.info),
      this.diskList,
      String(selector),
      this.report.luks.filter((l) => !l.open),
    );
    const e = this.entries.find((x) => x.info.id === info.id)!;
    // Mounted now, so that a filesystem that cannot be says so here rather than at its first read.
    (await this.mounter.lease(e)).release();
    return new MountedFilesystem(
      this.helper,
      e.info,
      () => this.lease(e),
      () => (this.closed ? this.closedError() : undefined),
      { ...(e.writtenAt !== undefined ? { writtenAt: e.writtenAt } : {}), ...this.sourceOf(e) },
    );
  }

  /**
   * Where `path` is: in the filesystem `selector` names (a bare partition number counts on
   * disk `disk`, default 0); with none named, in the only filesystem there is, or as the OS
   * sees it (its fstab's mount points, the longest that holds the path). `mountpoint`: where
   * the filesystem is in the OS's tree ("/" when named directly), so paths read in it can be
   * said as the OS has them. In the OS, the path is resolved as its kernel would across the
   * mount points (OsTree.resolve); its last component too with `follow` (to read a file's
   * content through a symlink, as cat does). `unmounted`: the filesystem the OS mounts at or
   * above the path that could not be mounted, if one is: the path is then the one beneath
   * its mount point, as libguestfs reads it.
   */
  async locate(
    path: Name,
    selector = '',
    disk = 0,
    opts: { follow?: boolean } = {},
  ): Promise<{ fs: MountedFilesystem; path: Name; mountpoint: string; unmounted?: Unmounted }> {
    if (selector) return { fs: await this.mount(/^\d+$/.test(selector) ? `disk${disk}:${selector}` : selector), path, mountpoint: '/' };
    const mine = this.filesystemsOn(disk);
    // The only filesystem, unless volumes that may hold more were left unassembled (a
    // clone's), or it is a btrfs, whose OS may be in a subvolume (@): then the OS is asked.
    if (mine.length === 1 && mine[0]!.info.type !== 'btrfs' && !this.clonedOn(disk)) return { fs: await this.mount(mine[0]!.info.id), path, mountpoint: '/' };
    const os = await this.osOn(disk);
    if (!os) {
      this.assertAssembled(disk);
      return { fs: await this.mount(''), path, mountpoint: '/' }; // names the choices
    }
    // The OS's path as its kernel resolves it across its mount points (OsTree.resolve): a
    // symlink into another filesystem followed there, ".." after a symlink its target's parent.
    return (await this.osTree(os)).locate(path, opts.follow);
  }

  /**
   * Disk `disk`'s files as its OS sees them (its fstab's filesystems at their mount points,
   * looked for on that disk first: see matchEntry, and placed as mount(8) places them: see
   * OsTree.of), or its only filesystem when it has one. An OS's filesystem other than its
   * root that cannot be mounted is left out, as libguestfs's tools leave it: its mount point
   * shows the folder beneath it, and the tree's `unmounted` says why (its walks and copies
   * say it too, at that folder). A root that cannot be mounted throws EMOUNT.
   */
  async tree(disk = 0): Promise<FileTree> {
    const mine = this.filesystemsOn(disk);
    const os = await this.osOn(disk);
    if (!os) {
      this.assertAssembled(disk);
      return this.mount(mine.length === 1 ? mine[0]!.info.id : `disk${disk}`);
    }
    return this.osTree(os);
  }

  /**
   * The filesystems on disk `disk` (not subvolumes) that the scan found mountable: one whose
   * mount failed since still counts, so that a call after that failure reads the disk as the
   * first call did (its OS, not its other filesystem alone).
   */
  private filesystemsOn(disk: number): FsEntry[] {
    return this.entries.filter((e) => mountOptions(e.info.type) && !e.info.subvolume && this.onDisk(e, disk));
  }

  /** An OS's tree (tree()), made once: its filesystems mounted, their mount points resolved. */
  private osTree(os: OperatingSystem): Promise<OsTree> {
    let tree = this.osTrees.get(os.root);
    if (!tree) {
      tree = (async () => {
        const { mounts, unmounted } = await this.osMounts(os);
        const root = unmounted.find((u) => u.mountpoint === '/');
        if (root) throw root.error;
        // A noauto line's mount point: what the OS mounts only when asked (fstab's last line for a place decides).
        const noauto = new Set(os.fstab.filter((f) => f.noauto && os.mountpoints[f.mountpoint] === f.id).map((f) => f.mountpoint));
        return OsTree.of(mounts, unmounted, noauto);
      })();
      // A failure is not kept: the next call tries again (and says why again).
      tree.catch(() => this.osTrees.delete(os.root));
      this.osTrees.set(os.root, tree);
    }
    return tree;
  }

  /** An OS's filesystems at their mount points: those that mount, and why each other one does not. */
  private async osMounts(os: OperatingSystem): Promise<{ mounts: Mount[]; unmounted: Unmounted[] }> {
    const tried = await Promise.all(
      Object.entries(os.mountpoints).map(async ([mountpoint, id]) => {
        try {
          const missing = this.missingSubvolumes.get(id);
          if (missing !== undefined)
            throw new FilesystemError('EMOUNT', (w) => `cannot mount ${w.fs(id)} (btrfs, read-only): ENOENT: its subvolume "${missing}" is not there`);
          return { mountpoint, fs: await this.mount(id) };
        } catch (err) {
          // That filesystem alone (EMOUNT, ENOFS); a guest gone, a timeout, end the call.
          if (err instanceof FilesystemError) return { mountpoint, error: err };
          throw err;
        }
      }),
    );
    return {
      mounts: tried.filter((m): m is Mount => 'fs' in m),
      unmounted: tried.filter((m): m is Unmounted => 'error' in m),
    };
  }

  /** The OS whose root is on disk `disk` (an LV's or an array's root too, through what it is built on), if one is. */
  private async osOn(disk: number): Promise<OperatingSystem | undefined> {
    const found = (await this.os()).filter((o) => {
      const root = this.entries.find((e) => e.info.id === o.root);
      return root !== undefined && this.onDisk(root, disk);
    });
    // Which one a path means cannot be told: refused, as libguestfs's tools refuse a multi-boot disk.
    if (found.length > 1)
      throw new FilesystemError(
        'ENOFS',
        (w) =>
          `${w.fs(`disk${disk}`)} holds ${found.length} operating systems (roots ${found.map((o) => w.fs(o.root)).join(', ')}), and a path ` +
          `may be in either: name a filesystem to read it alone (${w.fs(found[0]!.root)}, say)`,
      );
    return found[0];
  }

  /**
   * The user disks a device lies on: its own, its partition's, or, for a volume (an LV, an
   * md array, a LUKS container), the disks of the devices it is built on, all the way down.
   */
  private disksUnder(name: string, seen = new Set<string>()): Set<number> {
    const out = new Set<number>();
    const d = this.devices.find((x) => x.name === name);
    if (!d || seen.has(name)) return out;
    seen.add(name);
    const own = d.serial?.match(/^disk(\d+)$/)?.[1];
    if (own !== undefined) out.add(Number(own));
    for (const below of d.partition ? [d.partition.parent] : d.slaves) for (const i of this.disksUnder(below, seen)) out.add(i);
    return out;
  }

  /** Whether `e` lies on disk `disk` (a filesystem whose devices the kernel did not say counts as on every disk). */
  private onDisk(e: FsEntry, disk: number): boolean {
    const under = this.disksUnder(e.device);
    return under.size === 0 || under.has(disk);
  }

  /** Where `e`'s bytes come from (see MountedFilesystem.lineage): its images' identities and its id, when it lies on them whole. */
  private sourceOf(e: FsEntry): { source?: string } {
    const disks = [...this.disksUnder(e.device)].sort((x, y) => x - y);
    const ids = disks.map((d) => this.images[d]?.identity);
    return disks.length && ids.every(Boolean) ? { source: `${ids.join('+')}|${e.info.id.replace(/^disk\d+/, '')}` } : {};
  }

  private clonedOn(disk: number): boolean {
    return this.clones.some((dev) => this.disksUnder(dev).has(disk));
  }

  /**
   * With no OS found on disk `disk`: fails when volumes on it were left unassembled because
   * another disk holds the same members (a clone), as its OS may be in them: a clone's
   * tree is never silently another filesystem's.
   */
  private assertAssembled(disk: number): void {
    if (!this.clonedOn(disk)) return;
    const image = this.images[disk]?.path;
    throw new ApplianceError(
      'ECLONE',
      `disk${disk}${image ? ` (${image})` : ''} holds volume members (LVM, md or LUKS) that another disk holds too (cloned images): ` +
        'they were not assembled, so its files cannot be read beside its twin; inspect each image on its own (one inspect() each, as `appliance diff` does)',
    );
  }

  /** The operating systems found: each root filesystem's OS, with its packages when asked. */
  async os(opts: { packages?: boolean } = {}): Promise<OperatingSystem[]> {
    this.assertOpen();
    this.osList ??= this.detectOs(opts.packages ?? false);
    const found = await this.osList;
    if (opts.packages) await Promise.all(found.map((os) => this.readPackages(os)));
    return found;
  }

  /**
   * The OS of each filesystem that holds one. With `packages`, the package lists come in
   * the same call to the guest (up to PREFETCH_LIMIT each: a longer one is read again whole).
   */
  private async detectOs(packages: boolean): Promise<OperatingSystem[]> {
    const candidates = () => this.entries.filter((e) => !e.info.error && !NEVER_A_ROOT.has(e.info.type));
    await this.mounter.mountAll(candidates());
    await this.listSubvolumes();
    const roots = candidates();
    // One call to the guest for every filesystem mounted together; a clone's under its own
    // lease. One that cannot be mounted holds no OS we can tell of (its error says why).
    const held = await Promise.all(
      roots.filter((e) => !this.mounter.twinned(e)).map(async (e) => ({ e, lease: await this.mounter.lease(e).catch(() => undefined) })),
    );
    const mounted = held.filter((h): h is { e: FsEntry; lease: Lease } => h.lease !== undefined);
    const lists = packages ? PACKAGE_LISTS : [];
    const reads = mounted.map((h) => ({ os: osReads(h.lease.dir), lists: lists.length ? [{ root: h.lease.dir, paths: lists, limit: PREFETCH_LIMIT }] : [] }));
    const files = await this.helper.readFiles(reads.flatMap((r) => [...r.os, ...r.lists]));
    let at = 0;
    const found = mounted.map((h, i) => {
      const os = files.slice(at, (at += reads[i]!.os.length)).flat();
      if (lists.length) this.prefetched.set(h.e.info.id, new Map(lists.map((l, j) => [l, files[at]![j]])));
      at += reads[i]!.lists.length;
      return { e: h.e, files: os };
    });
    for (const e of roots.filter((x) => this.mounter.twinned(x))) {
      const read = await this.withLease(e, (dir) => this.helper.readFiles(osReads(dir))).catch(() => undefined);
      if (read) found.push({ e, files: read.flat() });
    }
    // In the order libguestfs lists filesystems (listfs.ml), as virt-inspector lists the roots
    // (clones were read last): whole disks, device-mapper devices that are not LVs (LUKS),
    // partitions, md arrays, LVs; a btrfs's subvolumes right after it; each kind in our order.
    const parent = (e: FsEntry) => (e.info.subvolume ? (this.entries.find((x) => x.device === e.device && !x.info.subvolume) ?? e) : e);
    const kind = ({ info: i }: FsEntry) =>
      i.lv ? 4 : i.id.startsWith('md:') ? 3 : i.id.startsWith('luks:') ? 1 : i.partition !== undefined ? 2 : i.disk === undefined ? 1 : 0;
    const rank = (e: FsEntry) => [kind(parent(e)), this.entries.indexOf(parent(e)), e.info.subvolume ? 1 : 0, this.entries.indexOf(e)];
    found.sort((a, b) => {
      const [ra, rb] = [rank(a.e), rank(b.e)];
      return ra.map((x, i) => x - rb[i]!).find((d) => d !== 0) ?? 0;
    });
    const systems = detectSystems(
      found.map(({ e, files: f }) => ({ info: e.info, files: f })),
      (entry, rootId) => this.matchEntry(entry, rootId),
    );
    return this.withWindows(
      systems,
      this.entries.filter((e) => !e.info.error),
    );
  }

  /**
   * Windows roots among the filesystems no other OS claims (after Linux's and the BSDs' as
   * libguestfs tries them), each put among the others in filesystem order.
   */
  private async withWindows(systems: OperatingSystem[], candidates: FsEntry[]): Promise<OperatingSystem[]> {
    const claimed = new Set(systems.flatMap((o) => Object.values(o.mountpoints)));
    const order = (id: string) => this.entries.findIndex((e) => e.info.id === id);
    for (const e of candidates.filter((x) => WINDOWS_FS_TYPES.has(x.info.type) && !claimed.has(x.info.id))) {
      // One that cannot be read holds no OS we can tell of (its filesystem's error says why).
      const found = await this.mount(e.info.id)
        .then(findWindows)
        .catch(() => undefined);
      if (!found) continue;
      const { os, packages } = windowsSystem(e.info.id, found.facts, found.errors, this.diskList);
      this.windowsApps.set(e.info.id, packages);
      const at = systems.findIndex((o) => order(o.root) > order(e.info.id));
      systems.splice(at < 0 ? systems.length : at, 0, os);
    }
    return systems;
  }

  /**
   * An OS's packages, from its database wherever its fstab puts it (/var on a filesystem of
   * its own: as libguestfs reads them, with the OS's filesystems mounted).
   */
  private async readPackages(os: OperatingSystem): Promise<void> {
    if (!os.packages && os.type === 'windows') os.packages = this.windowsApps.get(os.root) ?? [];
    if (!os.packages && os.packageFormat === 'pacman') {
      const at = this.holderOf(os, PACMAN_LOCAL);
      os.packages = await this.withLease(at.e, (dir) => readPacmanPackages(this.helper, dir, at.inner));
    }
    if (!os.packages && os.packageFormat === 'rpm') {
      const readFile = async (path: string, opts: ReadFileOptions) => {
        const at = this.holderOf(os, path);
        return (await this.mount(at.e.info.id)).readFile(at.inner, opts);
      };
      const read = await readRpmPackages(readFile).catch((err: Error) => ({ packages: [], error: err.message }));
      os.packages = read.packages;
      if (read.error) os.packagesError = read.error;
    }
    const list = packageList(os.packageFormat);
    if (os.packages || !list || !os.packageFormat) return;
    const { e, inner } = this.holderOf(os, list);
    const early = e.info.id === os.root ? this.prefetched.get(e.info.id) : undefined;
    let text = early?.has(list) ? early.get(list) : undefined;
    if (!early?.has(list) || (text && text.length >= PREFETCH_LIMIT)) {
      [[text]] = await this.withLease(e, (dir) => this.helper.readFiles([{ root: dir, paths: [inner], limit: PACKAGES_LIMIT }]));
    }
    os.packages = text ? packagesOf(os.packageFormat, text.toString('utf8')) : [];
  }

  /**
   * The filesystem of `os` that holds `path` (its fstab's longest mount point above it, but
   * "/": the root the OS was found on, whatever device its fstab names), and the path in it.
   */
  private holderOf(os: OperatingSystem, path: string): { e: FsEntry; inner: string } {
    const mountpoint = Object.keys(os.mountpoints)
      .filter((m) => m !== '/' && (path === m || path.startsWith(`${m}/`)))
      .sort((a, b) => b.length - a.length)[0];
    const id = mountpoint === undefined ? os.root : os.mountpoints[mountpoint]!;
    const inner = mountpoint === undefined ? path : path.slice(mountpoint.length) || '/';
    return { e: this.entries.find((x) => x.info.id === id) ?? this.entries.find((x) => x.info.id === os.root)!, inner };
  }

  /** Runs `fn` on `e`'s folder, mounted and held meanwhile. */
  private async withLease<T>(e: FsEntry, fn: (dir: string) => Promise<T>): Promise<T> {
    const lease: Lease = await this.mounter.lease(e);
    try {
      return await fn(lease.dir);
    } finally {
      lease.release();
    }
  }

  /**
   * The filesystem an fstab line mounts: its device (matchSpec), and on btrfs the subvolume
   * its subvol= option names (the top level without one). A subvolume that is not there is
   * named all the same, as libguestfs names it: mounting it fails (osMounts), as the
   * kernel's mount does, and the OS shows the folder beneath.
   * Looked for on the root's own disk first: a clone attached beside its original shares its
   * UUIDs and labels, and each root's fstab means its own disk's filesystems.
   */
  private matchEntry(entry: FstabEntry, rootId: string): string | undefined {
    const root = this.entries.find((e) => e.info.id === rootId);
    const under = root ? [...this.disksUnder(root.device)] : [];
    const id = this.matchSpec(entry.spec, under.length ? Math.min(...under) : 0);
    const subvol = entry.options
      .find((o) => o.startsWith('subvol='))
      ?.slice('subvol='.length)
      .replace(/^\/+/, '');
    if (!id || !subvol || !this.entries.some((x) => x.info.id === id && x.info.type === 'btrfs')) return id;
    const found = this.entries.find((x) => x.info.subvolume === subvol && x.device === this.entries.find((y) => y.info.id === id)?.device);
    if (found) return found.info.id;
    this.missingSubvolumes.set(`btrfsvol:${id}/${subvol}`, subvol);
    return `btrfsvol:${id}/${subvol}`;
  }

  /**
   * The filesystem udev's by-id name (under /dev/disk/by-id/) names: a device-mapper device
   * by its UUID or name, an LV's as Ubuntu's installer writes them (dm-uuid-LVM-<VG UUID><LV
   * UUID>, the UUID the kernel has for it; dm-name-<VG>-<LV>); a partition by its disk's id
   * (ata-…-part6, virtio-…-part2), which names a disk we cannot tell: taken for an image
   * alone only, as libguestfs does.
   */
  private matchById(name: string): string | undefined {
    const dm = /^dm-(uuid|name)-(.+)$/.exec(name);
    if (dm) {
      const device = this.devices.find((d) => (dm[1] === 'uuid' ? d.dm?.uuid === dm[2] : d.dm?.name === dm[2]));
      return device && this.entries.find((x) => x.device === device.name && !x.info.subvolume)?.info.id;
    }
    const part = /-part(\d+)$/.exec(name);
    const id = part && `disk0:${Number(part[1])}`;
    return id && this.diskList.length === 1 && this.entries.some((x) => x.info.id === id) ? id : undefined;
  }

  /**
   * The filesystem an fstab device names: by UUID, label, PARTUUID or PARTLABEL (on the
   * root's disk `home` first, where names repeat), LV path, udev's by-id names (a
   * device-mapper UUID or name; a partition of an image alone), or /dev/sdXN in the disks' order.
   */
  private matchSpec(spec: string, home: number): string | undefined {
    const whole = this.entries.filter((x) => !x.info.subvolume);
    const infos = whole.map((x) => x.info);
    const [key, value] = spec.includes('=') ? (spec.split(/=(.*)/s) as [string, string]) : ['', spec];
    const unquote = (s: string) => s.replace(/^"(.*)"$/, '$1');
    const parts = this.diskList.flatMap((d) => d.partitions.map((p) => ({ d, p })));
    const homeFirst = <T>(list: T[], atHome: (x: T) => boolean) => list.find(atHome) ?? list[0];
    const byPart = (pred: (p: (typeof parts)[number]['p']) => boolean) => {
      const hit = homeFirst(
        parts.filter(({ p }) => pred(p)),
        (x) => x.d.index === home,
      );
      return hit ? `disk${hit.d.index}:${hit.p.number}` : undefined;
    };
    const byInfo = (pred: (i: FilesystemInfo) => boolean) =>
      homeFirst(
        whole.filter((x) => pred(x.info)),
        (x) => this.disksUnder(x.device).has(home),
      )?.info.id;
    switch (key.toUpperCase()) {
      case 'UUID':
        return byInfo((i) => i.uuid?.toLowerCase() === unquote(value).toLowerCase());
      case 'LABEL':
        return byInfo((i) => String(i.label) === unquote(value));
      case 'PARTUUID':
        return byPart((p) => p.uuid?.toLowerCase() === unquote(value).toLowerCase());
      case 'PARTLABEL':
        return byPart((p) => String(p.name) === unquote(value));
      case 'MDUUID': {
        // Not fstab's: an md array by its UUID (mdadm.conf's, os/mdadm.ts).
        const md = this.report.md.find((m) => mdUuid(m.uuid) === value);
        return md && infos.find((i) => i.id === `md:${md.device}`)?.id;
      }
    }
    const byId = /^\/dev\/disk\/by-(uuid|label|partuuid)\/(.+)$/.exec(spec);
    if (byId) return this.matchSpec(`${byId[1]!.toUpperCase()}=${byId[2]}`, home);
    if (spec.startsWith('/dev/disk/by-id/')) return this.matchById(spec.slice('/dev/disk/by-id/'.length));
    const lv = /^\/dev\/(?:mapper\/)?([^/]+?)(?:[/-])([^/]+)$/.exec(spec);
    const lvId = lv && infos.find((i) => i.lv && (i.lv === `${lv[1]}/${lv[2]}` || lvDmName(i.lv) === `${lv[1]}-${lv[2]}`))?.id;
    if (lvId) return lvId;
    // /dev/sda2, /dev/vda2, /dev/xvda2, /dev/nvme0n1p2: the disk by its letter or number, as the OS saw them.
    const dev = /^\/dev\/(?:[svxh]?d|xvd)([a-z])(\d+)?$/.exec(spec) ?? /^\/dev\/nvme(\d+)n1(?:p(\d+))?$/.exec(spec);
    if (!dev) return undefined;
    // /dev/hda2 too (older guests). The disks in the order given, as libguestfs counts them
    // (virt-inspector's output is ours): a clone named so sees its original's disk.
    const index = /^\d+$/.test(dev[1]!) ? Number(dev[1]) : dev[1]!.charCodeAt(0) - 97;
    const id = dev[2] ? `disk${index}:${dev[2]}` : `disk${index}`;
    return infos.some((i) => i.id === id) ? id : undefined;
  }

  /** Unmounts everything and powers the VM off. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.vm.close();
  }

  /** A call after close() says so in our words (not as the guest command it could not start). */
  private assertOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): ApplianceError {
    return new ApplianceError(
      'ECLOSED',
      `the inspection of ${this.images.map((i) => i.path).join(', ')} is closed: read its files before close() (or before its await using block ends)`,
    );
  }

  /** A filesystem's mount, held for one operation, refused once the inspection is closed. */
  private lease(e: FsEntry): Promise<Lease> {
    this.assertOpen();
    return this.mounter.lease(e);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Disks in order, a disk before its partitions, partitions by number, then volumes by name. */
function byId(a: FilesystemInfo, b: FilesystemInfo): number {
  const rank = (i: FilesystemInfo) => [i.disk ?? 1e9, i.partition ?? 0];
  const [ra, rb] = [rank(a), rank(b)];
  return ra[0]! - rb[0]! || ra[1]! - rb[1]! || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** device-mapper's name for a logical volume: dashes in VG and LV names doubled, then VG-LV. */
function lvDmName(vgLv: string): string {
  const [vg, lv] = vgLv.split('/') as [string, string];
  return `${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;
}

/**
 * Attaches the images read-only to a new appliance VM and finds what they hold. Close it
 * (or `await using`) when done: that powers the VM off.
 */
/** `work`, or the caller's abort (signal, timeoutMs) as our error if that comes first: the caller then ends the VM, which ends the work. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  work.catch(() => {}); // given up: its end (the VM closed under it) is nobody's error
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(
        (signal.reason as Error | undefined)?.name === 'TimeoutError'
          ? new ApplianceError(
              'ETIMEDOUT',
              'inspect() did not finish within its timeoutMs: the disks were still being scanned (a LUKS key, say; keyTimeoutMs bounds each)',
            )
          : new ApplianceError('EABORTED', 'inspect() was aborted (its signal) while the disks were being scanned', { cause: signal.reason }),
      );
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export function inspect(disks: (string | DiskSpec)[], opts?: InspectOptions): Promise<Inspection> {
  return Inspection.open(disks, opts);
}
