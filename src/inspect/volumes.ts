/**
 * Volumes assembled from the disks, all read-only: LVM logical volumes (activated with
 * every volume group in read_only_volume_list, so device-mapper refuses writes too), md
 * arrays (assembled --readonly), LUKS containers (opened --readonly with the caller's
 * key). Members found twice (cloned images) are not assembled: which copy a volume would
 * read from is not the caller's choice then.
 */
import type { Vm } from '../vm/index.js';
import type { Probe } from './devices.js';
import { memberOf } from './devices.js';

export interface VolumeReport {
  /** LVM volume groups activated, and their logical volumes' device-mapper names. */
  lvm: { vg: string; lvs: string[] }[];
  md: { device: string; level?: string; uuid: string }[];
  /** `on`: the id of what the container is on (disk0:2, a VG/LV…), as filesystems are named. */
  luks: { device: string; uuid: string; open: boolean; on?: string }[];
  /** What could not be assembled, and why, in one line each. */
  errors: string[];
}

/** LVM without udev, over the user disks only (never the appliance's root), read-only. */
const LVM_CONFIG = [
  'devices { obtain_device_list_from_udev = 0 filter = [ "r|^/dev/vda|", "a|.*|" ] }',
  'activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 }',
].join(' ');

/**
 * The appliance has no /etc/lvm: an empty LVM_SYSTEM_DIR makes lvm run without one instead
 * of failing to create it, and keeps no metadata backups or archives (nothing written).
 */
const LVM_ENV = { LVM_SYSTEM_DIR: '' };

/** Keys for LUKS containers: by the container's UUID, or "*" for any; several are tried in turn. */
export type LuksKeys = Record<string, string | Buffer | readonly (string | Buffer)[]>;

type Member = { device: string } & NonNullable<ReturnType<typeof memberOf>>;

const membersOf = (probes: Probe[]): Member[] =>
  probes.flatMap((p) => {
    const m = memberOf(p);
    return m ? [{ device: p.device.name, ...m }] : [];
  });

/**
 * A member's own identity: the PV UUID and the LUKS UUID are each one device's, but every
 * member of an md array shares the array's UUID: its member UUID (1.x) tells them apart.
 */
const identity = (m: Member) => `${m.kind} ${m.uuid}${m.kind === 'md-member' && m.subUuid ? ` member ${m.subUuid}` : ''}`;

/** The devices of each member identity found. */
function twinsOf(members: Member[]): Map<string, string[]> {
  const twins = new Map<string, string[]>();
  for (const m of members) twins.set(identity(m), [...(twins.get(identity(m)) ?? []), m.device]);
  return twins;
}

/** The devices of members found twice or more (cloned images), which assembleVolumes leaves alone. */
export function duplicatedMembers(probes: Probe[]): string[] {
  return [...twinsOf(membersOf(probes)).values()].filter((devs) => devs.length > 1).flat();
}

/** The volumes whose members `probes` found; md arrays are numbered down from md127, after the `mdBefore` of earlier layers. */
export async function assembleVolumes(
  vm: Vm,
  probes: Probe[],
  luks: LuksOptions = {},
  mdBefore = 0,
  idOf: (device: string) => string = (d) => d,
): Promise<VolumeReport> {
  const report: VolumeReport = { lvm: [], md: [], luks: [], errors: [] };
  // What the errors say: the ids the caller knows (disk0:2), not the guest's device names.
  const ids = (devices: string[]) => devices.map(idOf).join(', ');
  const members = membersOf(probes);
  const twins = twinsOf(members);
  const duplicated = (m: Member) => (twins.get(identity(m))?.length ?? 0) > 1;
  for (const [k, devs] of twins) {
    if (devs.length > 1)
      report.errors.push(
        `${k} is on ${devs
          .map(idOf)
          .sort((x, y) => x.localeCompare(y, 'en', { numeric: true }))
          .join(' and ')} (cloned images?): not assembled; inspect each image on its own`,
      );
  }
  const pvs = members.filter((m) => m.kind === 'lvm-pv' && !duplicated(m));
  if (pvs.length)
    await activateLvm(
      vm,
      report,
      pvs.map((m) => m.device),
      ids,
    );
  const mds = members.filter((m) => m.kind === 'md-member' && !duplicated(m));
  if (mds.length) await assembleMd(vm, report, mds, mdBefore, ids);
  for (const l of members.filter((m) => m.kind === 'luks' && !duplicated(m)))
    await openLuks(vm, report, { device: l.device, uuid: l.uuid, id: idOf(l.device) }, luks);
  return report;
}

async function activateLvm(vm: Vm, report: VolumeReport, devices: string[], ids: (devices: string[]) => string): Promise<void> {
  const only = `devices { filter = [ ${devices.map((d) => `"a|^/dev/${d}$|"`).join(', ')}, "r|.*|" ] }`;
  const config = `${LVM_CONFIG} ${only}`;
  const vgs = await vm.exec(['lvm', 'vgs', '--readonly', '--noheadings', '-o', 'vg_name', '--config', config], { env: LVM_ENV });
  const names = vgs.stdout
    .toString('utf8')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) {
    report.errors.push(`LVM: no volume group on ${ids(devices)}${vgs.exitCode ? `: ${vgs.stderr.toString('utf8').trim().split('\n').at(-1)}` : ''}`);
    return;
  }
  // Every VG read-only: device-mapper then refuses writes as the disks underneath do.
  const readOnly = `activation { read_only_volume_list = [ ${names.map((n) => JSON.stringify(n)).join(', ')} ] }`;
  const on = await vm.exec(['lvm', 'vgchange', '-ay', '--config', `${config} ${readOnly}`, ...names], { env: LVM_ENV });
  if (on.exitCode !== 0) report.errors.push(`LVM: cannot activate ${names.join(', ')}: ${on.stderr.toString('utf8').trim().split('\n').at(-1)}`);
  const lvs = await vm.exec(['lvm', 'lvs', '--readonly', '--noheadings', '--separator', '/', '-o', 'vg_name,lv_name', '--config', config, ...names], {
    env: LVM_ENV,
  });
  for (const vg of names) {
    const mine = lvs.stdout
      .toString('utf8')
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(`${vg}/`))
      .map((s) => s.slice(vg.length + 1));
    report.lvm.push({ vg, lvs: mine });
  }
}

/**
 * Each md array from the members found, named explicitly: a scan (mdadm --assemble --scan)
 * would also take the members left out as clones, and skips arrays of another host
 * unless told to ignore homehosts. Read-only, so not even a resync starts.
 */
async function assembleMd(
  vm: Vm,
  report: VolumeReport,
  members: { device: string; uuid: string; detail?: string }[],
  before: number,
  ids: (devices: string[]) => string,
): Promise<void> {
  // Numbered down from md127 in the order of their first member by device name (vda1
  // before vda2 before vdb1), as libguestfs's appliance assembles them (mdadm -As).
  const byName = [...members].sort((a, b) => a.device.localeCompare(b.device, 'en', { numeric: true }));
  const arrays = [...new Set(byName.map((m) => m.uuid))];
  for (const [i, uuid] of arrays.entries()) {
    const devices = members.filter((m) => m.uuid === uuid);
    const device = `md${127 - before - i}`;
    const r = await vm.exec(['mdadm', '--assemble', '--readonly', '--run', `/dev/${device}`, ...devices.map((m) => `/dev/${m.device}`)]);
    if (r.exitCode === 0) report.md.push({ device, uuid, ...(devices[0]!.detail ? { level: devices[0]!.detail } : {}) });
    else
      report.errors.push(
        `md ${uuid} on ${ids(devices.map((m) => m.device))}: ${r.stderr.toString('utf8').trim().split('\n').at(-1) || `mdadm status ${r.exitCode}`}`,
      );
  }
}

/** The keys of LUKS containers, and how long one may take to open one. */
export interface LuksOptions {
  keys?: LuksKeys;
  timeoutMs?: number;
}

/**
 * A key's derivation takes what the header asks for: a few seconds as cryptsetup makes
 * them (a minute under TCG, which is slower), hours as a hostile header may ask. Past this
 * a key is given up on (the container stays locked), so an image cannot hang an inspection.
 */
export const LUKS_KEY_TIMEOUT_MS = 300_000;

async function openLuks(vm: Vm, report: VolumeReport, c: { device: string; uuid: string; id: string }, luks: LuksOptions): Promise<void> {
  const { device, uuid, id } = c;
  const name = `luks-${uuid}`;
  const given = luks.keys?.[uuid.toLowerCase()] ?? luks.keys?.[uuid] ?? luks.keys?.['*'];
  const keys = given === undefined ? [] : typeof given === 'string' || Buffer.isBuffer(given) ? [given] : given;
  if (keys.length === 0) {
    report.luks.push({ device, uuid, open: false });
    report.errors.push(`LUKS ${uuid} on ${id}: locked, no key given for it`);
    return;
  }
  let r!: Awaited<ReturnType<Vm['exec']>>;
  const timeoutMs = luks.timeoutMs ?? LUKS_KEY_TIMEOUT_MS;
  for (const key of keys) {
    try {
      r = await vm.exec(['cryptsetup', 'open', '--readonly', '--type', 'luks', '--key-file', '-', `/dev/${device}`, name], { input: key, timeoutMs });
    } catch (err) {
      if ((err as { code?: string }).code !== 'ETIMEDOUT') throw err;
      report.luks.push({ device, uuid, open: false });
      report.errors.push(
        `LUKS ${uuid} on ${id}: a key was still being tried after ${timeoutMs / 1000} s (its header asks for a key derivation that long): left locked`,
      );
      return;
    }
    if (r.exitCode === 0) break;
  }
  report.luks.push({ device, uuid, open: r.exitCode === 0 });
  if (r.exitCode === 0) return;
  const said = r.stderr.toString('utf8').trim().split('\n').at(-1) || `cryptsetup status ${r.exitCode}`;
  report.errors.push(`LUKS ${uuid} on ${id}: ${/reload ioctl .*No such file or directory/.test(said) ? await missingCipher(vm, device) : said}`);
}

/**
 * dm-crypt's table load fails with ENOENT ("Error allocating crypto tfm") when the kernel
 * has no implementation of the container's cipher: the key was right, a module (xts, for
 * aes-xts-plain64) is missing from the appliance. Said so, with the cipher's name.
 */
async function missingCipher(vm: Vm, device: string): Promise<string> {
  const dump = await vm.exec(['cryptsetup', 'luksDump', `/dev/${device}`]);
  const cipher =
    /^\s*cipher:\s*(\S+)/m.exec(dump.stdout.toString('utf8'))?.[1] ??
    /^Cipher name:\s*(\S+)[\s\S]*?^Cipher mode:\s*(\S+)/m.exec(dump.stdout.toString('utf8'))?.slice(1).join('-') ??
    'its cipher';
  return `the key is right, but the appliance's kernel has no driver for ${cipher} (a crypto module is missing from the appliance: aes-xts-plain64 needs xts and ecb)`;
}

/** The subvolumes of the btrfs mounted at `dir`, as paths from its top level ("@home", "a/b"). */
export async function btrfsSubvolumes(vm: Vm, dir: string): Promise<string[]> {
  const r = await vm.exec(['btrfs', 'subvolume', 'list', '-a', dir]);
  if (r.exitCode !== 0) return [];
  return r.stdout
    .toString('utf8')
    .split('\n')
    .map((l) => /\bpath (?:<FS_TREE>\/)?(.+)$/.exec(l)?.[1])
    .filter((p): p is string => Boolean(p));
}
