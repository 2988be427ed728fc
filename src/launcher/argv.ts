import type { AccelChoice } from './accel.js';
import type { OpenDisk } from './disks.js';
import type { MachineProfile } from './machine.js';
import { AGENT_PORT_NAME, diskSerial, ROOT_SERIAL } from '../guest/contract.js';

/**
 * Kernel parameters for every boot: the console on the first serial port (the launcher
 * reads it), little printed, a panic or a reboot ends qemu at once (see reboot=t), and
 * the slow probes an appliance does not need skipped.
 */
export const BASE_CMDLINE = [
  'console=ttyS0',
  'quiet',
  'panic=-1',
  // Reboot by triple fault: the CPU resets, which qemu's -no-reboot turns into its exit on
  // every machine. The default on microvm (hardware-reduced ACPI) is "EFI", then a jump
  // into the firmware, which no reset follows: a resumed snapshot's qboot, given no kernel,
  // then idles forever, so a panic or a reboot hung the caller.
  'reboot=t',
  'no_timer_check',
  '8250.nr_uarts=1',
  'cryptomgr.notests',
  'edd=off',
  // Initcalls that cost ~200 ms under TCG (initcall_debug) for nothing an appliance uses:
  // kprobe trace events, TCP cubic (its BTF kfunc registration; init_net then uses reno,
  // which is fine for loopback) and the KDF108 self-test.
  'initcall_blacklist=init_kprobe_trace,cubictcp_register,crypto_kdf108_init',
  // Zeroing every kernel allocation is hardening a throwaway VM can skip; slow under TCG.
  'init_on_alloc=0',
  // Programs and their libraries at the same addresses in every process: TCG finds code it
  // translated for one process (keyed by address) ready for the next, instead of translating
  // ld.so and libc again for each exec. `sh -c 'ls | grep'` run again in one VM: 100-200 ms
  // → 28 ms; the first run of a restored VM ~20 % less. Address randomisation guards a
  // program against its input; the guest is untrusted by the host whatever runs in it
  // (SECURITY.md), so nothing the host relies on is given up.
  'norandmaps',
  // A disk whose primary GPT header is bad is read from its backup, as sgdisk and our own
  // probe read it (without this the kernel tries the backup only when the primary is good).
  'gpt',
];

export interface KernelBoot {
  kernel: string;
  initrd: string;
  /** The whole kernel command line (see kernelCmdline). */
  cmdline: string;
}

export interface QemuConfig {
  machine: MachineProfile;
  accel: AccelChoice;
  memoryMb: number;
  cpus: number;
  /**
   * Boot the kernel, or 'incoming': resume a saved guest (see snapshot.ts), which qemu
   * waits for on its monitor. A restored guest is past its boot: given the kernel again,
   * qemu would copy it over the guest's memory at reset.
   */
  boot: KernelBoot | 'incoming';
  /**
   * Guest RAM in a file (snapshots, see snapshot.ts): shared while a snapshot is made, so
   * the file is the guest's memory; private when restoring, so the guest's writes stay in
   * this qemu (copy-on-write) and the file is never changed.
   */
  ramFile?: { path: string; shared: boolean };
  /** The appliance's root image: raw, attached read-only. */
  root: string;
  /** User disks: qemu inherits their descriptors (DISK_FD below; see disks.ts). */
  disks: Drive[];
  /** A unix socket a server listens on; qemu connects to it for the guest channel. */
  channelSocket: string;
  /** A unix socket a server listens on for qemu's monitor (QMP); none without it. */
  monitorSocket?: string;
  /** Attach empty stand-ins for the user disks (a snapshot's save, see modes.ts). */
  placeholderDisks?: boolean;
  /** Devices for this many user disks (contract.ts diskSlots): the disks first, empty stand-ins after. */
  diskSlots?: number;
  /** Start with the CPU stopped (-S): the monitor lets it run once the block graph is checked (block-graph.ts). */
  paused?: boolean;
}

/** What the command line says of a user disk; its image reaches qemu as an inherited descriptor. */
export type Drive = Pick<OpenDisk, 'path' | 'format' | 'readonly' | 'protocol' | 'allowBackingFile'>;

/**
 * qemu's file descriptors for user disk i are DISK_FD + 2i (the image, open as the disk is
 * attached) and, for a read-write disk, DISK_FD + 2i + 1 (a read-only one: qemu opens an
 * image read-only first and asks for write access once the device is attached). Fd 3 is
 * left for a snapshot's state (snapshot.ts), so the numbers do not depend on the run's mode.
 */
export const DISK_FD = 4;
export const FDS_PER_DISK = 2;

/** BASE_CMDLINE, the TSC frequency under TCG when the host's is known (see machine.ts), then `extra`. */
export function kernelCmdline(accel: AccelChoice, tscKhz: number | undefined, extra: string[] = []): string {
  const tsc = accel.accel === 'tcg' && tscKhz ? [`tsc_early_khz=${tscKhz}`] : [];
  return [...BASE_CMDLINE, ...tsc, ...extra].join(' ');
}

/**
 * The qemu command line, without the binary. No default devices, no user config, no
 * display; the serial console on stdout; every disk's format explicit (qemu never
 * probes, see disks.ts); the root disk and, by default, user disks read-only.
 */
export function qemuArgv(c: QemuConfig): string[] {
  const bus = c.machine.virtio;
  const blk = (drive: string, serial: string) => ['-device', `virtio-blk-${bus},drive=${drive},serial=${serial}`];
  const ram = c.ramFile
    ? [
        ...['-object', `memory-backend-file,id=ram,size=${c.memoryMb}M,mem-path=${optionValue(c.ramFile.path)},share=${c.ramFile.shared ? 'on' : 'off'}`],
        // A saved state without the run state in it: the restored guest runs at once.
        ...(c.ramFile.shared ? ['-global', 'migration.store-global-state=off'] : []),
      ]
    : [];
  const argv = [
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ...['-machine', c.machine.type + (c.ramFile ? ',memory-backend=ram' : ''), '-accel', accelOption(c.accel)],
    ...(c.accel.cpu ? ['-cpu', c.accel.cpu] : []),
    ...['-m', String(c.memoryMb), '-smp', String(c.cpus)],
    ...ram,
    ...(c.machine.bios ? ['-bios', c.machine.bios] : []),
    ...['-serial', 'stdio'],
    ...(c.boot === 'incoming' ? ['-incoming', 'defer'] : ['-kernel', c.boot.kernel, '-initrd', c.boot.initrd, '-append', c.boot.cmdline]),
    // The root disk and the guest channel come first: with snapshots the init binds the
    // first two virtio devices before its snapshot point, the user disks after (init.c).
    // By an explicit protocol and filename: no part of the path is ever taken for a protocol.
    ...['-drive', `if=none,id=root,driver=raw,file.driver=file,file.filename=${optionValue(c.root)},readonly=on`, ...blk('root', ROOT_SERIAL)],
    ...['-device', `virtio-serial-${bus}`],
    ...['-chardev', `socket,id=agent,path=${optionValue(c.channelSocket)}`],
    ...['-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`],
  ];
  for (let i = 0; i < Math.max(c.disks.length, c.diskSlots ?? 0); i++) {
    const d = c.disks[i];
    argv.push(...(c.placeholderDisks || !d ? placeholder(i) : drive(d, i)), ...blk(diskSerial(i), diskSerial(i)));
  }
  if (c.paused) argv.push('-S');
  if (c.monitorSocket) argv.push('-chardev', `socket,id=qmp,path=${optionValue(c.monitorSocket)}`, '-mon', 'chardev=qmp,mode=control');
  return argv;
}

/** The formats whose images can have a backing file (QAPI's BlockdevOptionsGenericCOWFormat). */
const COW_FORMATS: ReadonlySet<string> = new Set(['qcow2', 'qcow', 'qed', 'vmdk']);

/**
 * User disk i as a -blockdev node: its descriptors in fd set i+1, opened by qemu through
 * /dev/fdset with the protocol and format named, so no name an image or a path holds is
 * ever parsed; with "backing": null qemu opens no backing file even if the header named
 * one. An image whose backing file the caller trusts goes by its absolute path instead
 * (still with an explicit protocol), for qemu finds a relative backing name beside the image's.
 */
function drive(d: Drive, i: number): string[] {
  const set = i + 1;
  const fd = DISK_FD + FDS_PER_DISK * i;
  const node = {
    driver: d.format,
    'node-name': diskSerial(i),
    'read-only': d.readonly,
    ...(COW_FORMATS.has(d.format) && !d.allowBackingFile ? { backing: null } : {}),
    // Not aio=io_uring, though ~25% faster here for an inspection's small reads: qemu 7.2's
    // io_uring resubmits a read that ends at the end of the file forever (a 3-byte raw
    // image, a truncated qcow2 header: qemu hangs where the thread pool says the error).
    file: { driver: d.protocol, filename: d.allowBackingFile ? d.path : `/dev/fdset/${set}` },
  };
  const fds = d.allowBackingFile ? [] : d.readonly ? [fd] : [fd, fd + 1];
  return [...fds.flatMap((n) => ['-add-fd', `fd=${n},set=${set}`]), '-blockdev', JSON.stringify(node)];
}

/**
 * An empty stand-in for user disk slot i, read-only. Its device is never bound before the
 * snapshot point, so nothing of it (the read-only feature included) is in a saved guest:
 * a restored one binds the real disk of its own boot in that slot.
 */
function placeholder(i: number): string[] {
  return ['-blockdev', JSON.stringify({ driver: 'null-co', 'node-name': diskSerial(i), 'read-only': true })];
}

/**
 * TCG's translation buffer: qemu's default (1 GiB) is touched as it fills and counts in
 * qemu's resident set; a boot and ordinary commands translate far less than 32 MiB, and
 * a full buffer is only flushed and refilled. Measured: peak RSS −12 MiB, same boot time.
 */
export const TCG_TB_SIZE_MB = 32;

function accelOption(a: AccelChoice): string {
  return a.accel === 'tcg' ? `tcg,tb-size=${TCG_TB_SIZE_MB}` : a.accel;
}

/** qemu option values are comma-separated: a comma inside a value is written twice. */
export function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}
