/**
 * The guest contract: every name, number and line that the host side (launcher, agent
 * client, appliance composer, inspection) and the guest programs (c/init.c, c/agent/,
 * c/inspect/) must agree on.
 * The C side gets it as contract.h, generated from this file when they are compiled
 * (contract-header.ts, compile.ts), so the two sides cannot drift apart.
 * ARCHITECTURE.md "Contracts between the parts" explains each item.
 */
import { randomBytes } from 'node:crypto';

/** The virtio-serial port the agent opens (`/sys/class/virtio-ports/*\/name`). */
export const AGENT_PORT_NAME = 'org.appliance.agent';
/** The folder of the root image that holds our guest programs. */
export const PROGRAMS_DIR = '/usr/libexec/appliance';
/** Where the root image holds the agent; the init execs it as PID 1 after the switch. */
export const AGENT_PATH = `${PROGRAMS_DIR}/agent`;
/**
 * Where the root image holds the inspect helper (c/inspect/), which src/inspect runs. The
 * agent runs its commands in a server it started before the snapshot point (INSPECT_COMMAND.serve).
 */
export const INSPECT_PATH = `${PROGRAMS_DIR}/inspect`;
/**
 * A mount type the inspect helper takes as "run this FUSE driver program of the appliance"
 * (`fuse:ntfs-3g`) rather than a kernel filesystem type for mount(2).
 */
export const FUSE_TYPE_PREFIX = 'fuse:';
/** The root disk's virtio serial: the init finds its root by it. */
export const ROOT_SERIAL = 'appliance-root';
/** User disk i has serial `disk<i>` and appears as `/dev/disk/by-id/virtio-disk<i>`. */
export const DISK_SERIAL_PREFIX = 'disk';
export const BY_ID_PREFIX = '/dev/disk/by-id/virtio-';
export const diskSerial = (index: number): string => `${DISK_SERIAL_PREFIX}${index}`;
export const diskGuestPath = (index: number): string => `${BY_ID_PREFIX}${diskSerial(index)}`;

/** Kernel command line parameters the init reads. */
export const CMDLINE = {
  /** The root disk's serial (a value starting with /dev/ names the device directly). */
  root: 'appliance.root',
  /** What to exec in the root after the switch (default /init). */
  init: 'appliance.init',
  /** Seconds to wait for the root disk (default 10). */
  rootwait: 'appliance.rootwait',
  /** 1: print a timing mark at each step. */
  timing: 'appliance.timing',
  /** 1: stop at the snapshot point and wait for the go line. */
  snapshot: 'appliance.snapshot',
  /** Modules of the root to load before the snapshot point (comma-separated), so a snapshot holds them. */
  modules: 'appliance.modules',
} as const;
export const param = (key: keyof typeof CMDLINE, value: string | number): string => `${CMDLINE[key]}=${value}`;

/** Folders the init mounts a tmpfs on, in the root image (which must have them empty), with the tmpfs mode. */
export const TMPFS_MOUNTS: readonly { path: string; mode: number }[] = [
  { path: '/tmp', mode: 0o1777 },
  { path: '/run', mode: 0o755 },
  { path: '/var/tmp', mode: 0o1777 },
  { path: '/root', mode: 0o700 },
];
/** Folders the init moves its /dev, /proc and /sys onto, in the root image. */
export const MOVED_MOUNTS: readonly { path: string; mode: number }[] = [
  { path: '/dev', mode: 0o755 },
  { path: '/proc', mode: 0o555 },
  { path: '/sys', mode: 0o555 },
];

/**
 * What the init tells the program it execs, in its environment: when the init started
 * (ms of boot clock), whether to print timing marks, and, for the agent exec'd before the
 * snapshot point, that it runs the point itself (c/snapshot-point.h): to be saved
 * (`snapshot`), or not (`snapshotRefused`, with the reason).
 */
export const INIT_ENV = {
  initMs: 'APPLIANCE_INIT_MS',
  timing: 'APPLIANCE_TIMING',
  snapshot: 'APPLIANCE_SNAPSHOT',
  snapshotRefused: 'APPLIANCE_SNAPSHOT_REFUSED',
} as const;

/** Console line prefixes of the guest programs: `appliance-init: …`. */
export const INIT_LOG_PREFIX = 'appliance-init';
export const AGENT_LOG_PREFIX = 'appliance-agent';
export const INSPECT_LOG_PREFIX = 'appliance-inspect';
/** What the init says on the console, after its prefix, that the launcher acts on. */
export const INIT_LINES = {
  /** Stopped at the snapshot point: a save may happen now, then the go line is awaited. */
  snapshot: 'snapshot point: waiting for the go line',
  /** Instead of `snapshot` when this boot must not be saved; the reason follows. */
  noSnapshot: 'snapshot point, not to be saved: ',
  /** Past the go line (for people reading the console). */
  resumed: 'resumed',
  /** A fatal error follows; the init then powers off. */
  fatal: 'FATAL: ',
} as const;
/** A whole console line as the launcher sees it. */
export const initLine = (what: keyof typeof INIT_LINES): string => `${INIT_LOG_PREFIX}: ${INIT_LINES[what]}`;

/**
 * The go line the launcher types on the console at the snapshot point (init.c apply_go):
 * the host's wall clock, 32 random bytes to credit to the guest's generator and reseed
 * it, and whether to print the boot timeline. A line missing its start or its end is ignored.
 */
export const GO_LINE = { start: 'appliance.go', end: 'end', seedBytes: 32 } as const;
export function goLine(timing: boolean, disks: number, nowMs = performance.timeOrigin + performance.now()): string {
  const ns = BigInt(Math.round(nowMs * 1e6));
  const sec = ns / 1_000_000_000n;
  const nsec = (ns % 1_000_000_000n).toString().padStart(9, '0');
  const seed = randomBytes(GO_LINE.seedBytes).toString('hex');
  return `${GO_LINE.start} realtime=${sec}.${nsec} seed=${seed} timing=${timing ? 1 : 0} disks=${disks} ${GO_LINE.end}\n`;
}

/**
 * User disks a snapshot's guest has devices for. A boot with up to this many resumes the
 * one snapshot: its disks in the first slots, empty read-only stand-ins in the rest, which
 * the init never binds (the go line says how many are real). More disks: a shape of their own.
 */
export const DISK_SLOTS = 8;
export const diskSlots = (disks: number): number => Math.max(disks, DISK_SLOTS);

/**
 * The guest channel's framed protocol (documented message by message in c/protocol.h):
 * a 12-byte little-endian header (u32 payload length, u8 type, u8 flags, u16 reserved,
 * u32 request id) and a payload of at most MAX_PAYLOAD bytes.
 */
export const PROTOCOL_VERSION = 2;
export const HEADER_SIZE = 12;
export const MAX_PAYLOAD = 65536;
/** Unacknowledged stdin bytes the host may have in flight per command. */
export const STDIN_WINDOW = 256 * 1024;
/**
 * Output bytes (STDOUT, STDERR, a READ_FILE's DATA) the agent may send per stream of a
 * request before the host gives them back with CREDIT: a reader that is behind holds up
 * its own stream only, never the channel (a walk read slowly while another call runs).
 */
export const OUTPUT_WINDOW = 1024 * 1024;

export const FrameType = {
  HELLO: 1,
  EXEC: 2,
  STDIN: 3,
  STDIN_ACK: 4,
  STDOUT: 5,
  STDERR: 6,
  EXIT: 7,
  ERROR: 8,
  WRITE_FILE: 9,
  READ_FILE: 10,
  DATA: 11,
  OK: 12,
  POWEROFF: 13,
  SIGNAL: 14,
  RESIZE: 15,
  CANCEL: 16,
  CREDIT: 17,
} as const;

export const FrameFlag = {
  /** EXEC: stdin follows in STDIN frames (else the command reads /dev/null). */
  STDIN: 1,
  /** EXEC: run on a pseudo-terminal. */
  PTY: 2,
  /** DATA of a WRITE_FILE: give up and remove the file. */
  ABORT: 1,
} as const;

/** HELLO's flags word: the agent is the guest's PID 1. */
export const HELLO_PID1 = 1;
/**
 * Payload sizes: the fixed-size messages whole, the others' fixed heads (ERROR_MIN: the
 * errno before the message; WRITE_FILE_HEAD: the mode before the path).
 */
export const PAYLOAD = { HELLO: 20, EXIT: 12, STDIN_ACK: 4, SIGNAL: 4, RESIZE: 4, CREDIT: 8, ERROR_MIN: 4, EXEC_HEAD: 12, WRITE_FILE_HEAD: 4 } as const;
/** Where each field of a fixed layout sits, in bytes from the payload's start (c/protocol.h documents every message). */
export const FIELD_AT = {
  /** The frame header's (HEADER_SIZE bytes). */
  HEADER: { length: 0, type: 4, flags: 5, reserved: 6, id: 8 },
  HELLO: { version: 0, bootMs: 4, initMs: 8, flags: 12, resumeMs: 16 },
  EXEC: { argc: 0, envc: 4, rows: 8, cols: 10 },
  EXIT: { code: 0, signal: 4, durationMs: 8 },
  RESIZE: { rows: 0, cols: 2 },
  CREDIT: { stream: 0, bytes: 4 },
} as const;

/**
 * The inspect helper's protocol (c/inspect/ in the guest; src/inspect/helper.ts runs its
 * commands and records.ts reads what they print): `inspect COMMAND ARGS…`.
 * - Text replies (devices, mount, umount, statfs, btrfs-forget) are lines of `key=value`
 *   fields separated by tabs, bytes outside printable ASCII and `%`, `=` escaped as %XX.
 * - read: for each range, u32 length and the bytes. read-files: for each path, i32 errno,
 *   u64 length, the bytes; in a group whose LIMIT is READ_TYPES, what is there instead
 *   (lstat: a symlink itself): its FILE_TYPE letter, then a symlink's target (libguestfs's
 *   is_dir and is_symlink tests, which the files cannot answer).
 * - walk: records (little endian). An entry: u8 RECORD.entry, u8 type (FILE_TYPE), u32
 *   mode, u32 uid, u32 gid, u32 nlink, u64 size, u64 blocks (512 B), u64 ino, u32 rdev
 *   major, u32 rdev minor, i64+u32 atime, i64+u32 mtime, i64+u32 ctime, u32+bytes path
 *   (from the filesystem's root), u32+bytes symlink target, u8 hashed, [32 bytes sha256].
 *   An entry that cannot be read: u8 RECORD.error, i32 errno, u32+bytes path. With
 *   WALK_FLAG.content each regular file's record is followed by its data as extents (u64
 *   offset, u64 length ≤ EXTENT_MAX, the bytes; holes are not sent), then EXTENT_END and
 *   u32 errno (0: all of it was read); a hard link already sent has no extents; with
 *   WALK_FLAG.deferBig a file of at least BIG_FILE bytes without holes sends
 *   EXTENT_DEFERRED alone: the host reads it apart.
 * - cat: the file's bytes; a file that cannot be read exits CAT_ERRNO_BASE + its errno.
 * - serve (the agent's only): commands in-process, one at a time, over a SOCK_SEQPACKET
 *   socket on its stdin. A request is one message of the command's arguments after the
 *   program name, each NUL-terminated (at most MAX_PAYLOAD bytes, MAX_PAYLOAD / 2
 *   arguments), with two descriptors (SCM_RIGHTS): its stdout and stderr; the reply, once
 *   the command has ended and closed both, is its exit status as an int. A command that
 *   exits (fatal, or stdout closed on it) or is killed takes the server with it, and the
 *   agent forks later commands, as it does those that come while the server is busy.
 */
export const INSPECT_COMMAND = {
  devices: 'devices',
  read: 'read',
  mount: 'mount',
  umount: 'umount',
  statfs: 'statfs',
  walk: 'walk',
  cat: 'cat',
  readFiles: 'read-files',
  btrfsForget: 'btrfs-forget',
  serve: 'serve',
} as const;
/** walk's FLAGS: h hash regular files, f follow PATH itself if it is a symlink, x stay on PATH's filesystem (btrfs subvolumes included), c content, b large files read apart. */
export const WALK_FLAG = { hash: 'h', follow: 'f', oneFs: 'x', content: 'c', deferBig: 'b' } as const;
/** walk's DEPTH that means "everything below". */
export const WALK_DEPTH_ALL = 100000;
/** read-files' LIMIT for a group of paths whose types are wanted, not their contents. */
export const READ_TYPES = 't';
export const RECORD = { entry: 'E', error: 'X' } as const;
export const FILE_TYPE = { file: 'f', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' } as const;
/**
 * The longest path a walk record holds (with its NUL): 8 times the guest's PATH_MAX. The walk
 * goes by descriptor, so a tree deeper than PATH_MAX is walked and copied; the bound keeps
 * what a hostile image's deep chain of folders costs in bytes sent (each record names its
 * whole path) and in the host's memory within a few times the image's own size.
 */
export const RECORD_PATH_MAX = 32768;
/** The guest's PATH_MAX: the longest symlink target, and the longest path one call takes. */
export const GUEST_PATH_MAX = 4096;
export const EXTENT_MAX = 65536;
export const EXTENT_END = 0xffffffffffffffffn;
export const EXTENT_DEFERRED = 0xfffffffffffffffen;
export const BIG_FILE = 1 << 20;
export const CAT_ERRNO_BASE = 64;
/** The keys of the text replies' fields. */
export const INSPECT_FIELD = {
  // devices
  name: 'name',
  dev: 'dev',
  sectors: 'sectors',
  ro: 'ro',
  partition: 'partition',
  start: 'start',
  parent: 'parent',
  serial: 'serial',
  sectorSize: 'sector_size',
  dmName: 'dm_name',
  dmUuid: 'dm_uuid',
  mdLevel: 'md_level',
  slaves: 'slaves',
  // mount, umount, statfs, btrfs-forget
  dir: 'dir',
  errno: 'errno',
  kernel: 'kernel',
  frsize: 'frsize',
  blocks: 'blocks',
  bfree: 'bfree',
  bavail: 'bavail',
  files: 'files',
  ffree: 'ffree',
} as const;
