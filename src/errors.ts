import type { constants } from 'node:os';

/**
 * Every code an ApplianceError can carry, by where it comes from. Callers branch on them;
 * the CLI maps them to exit statuses in one table (cli/exit-status.ts).
 */
// prettier-ignore
export type ErrorCode =
  // the caller's input: options, sizes, names
  | 'EUSAGE' | 'EBADSIZE' | 'EBADOPTION' | 'EBADEPOCH' | 'EBADUUID' | 'EBADTREE' | 'EINVAL' | 'E2BIG' | 'ENAMETOOLONG'
  // the host: kernel, modules, tools, packages, programs, files
  | 'ENOKERNEL' | 'EKERNEL' | 'EKERNELPERM' | 'EKERNELFORMAT' | 'ENOMODULES' | 'EUNKNOWNMODULE' | 'EMODULEDEP'
  | 'EDECOMPRESS' | 'ENOTOOL' | 'ENOCOMPILER' | 'EINITBUILD' | 'ENOINIT' | 'ENODPKG' | 'ENOPACKAGE' | 'ENOBINARY'
  | 'ENOINCLUDE' | 'EFILETYPE' | 'EGUESTPATH' | 'ESOURCEDIR' | 'ESOURCEREAD' | 'ESOURCECHANGED'
  // the image writers
  | 'EIMAGETOOSMALL' | 'EIMAGETOOLARGE' | 'EIMAGEFULL' | 'EIMAGEWRITE' | 'EFILETOOLARGE' | 'ESYMLINKTOOLONG'
  | 'ENEWCFIELD' | 'ENEWCNAME' | 'ENEWCSIZE' | 'ENEWCSOURCE' | 'ENEWCFORMAT'
  // the cache
  | 'ECACHEOWNER' | 'ECACHEPERM' | 'ELOCKTIMEOUT' | 'EMANIFEST'
  // disks given to a VM
  | 'EDISKACCESS' | 'EDISKFORMAT' | 'EDISKBACKING' | 'EDISKOPEN'
  // booting: qemu, the accelerator, the guest
  | 'ENOQEMU' | 'ENOKVM' | 'EQEMU' | 'EQMP' | 'ECHANNEL' | 'EBOOTTIMEOUT' | 'EBOOTFAILED'
  // a booted guest that panicked, rebooted or powered off by itself (or whose qemu died)
  | 'EGUESTDIED'
  // the guest channel and commands in the guest
  | 'EAGENTGONE' | 'ECLOSED' | 'EPROTO' | 'ETIMEDOUT' | 'EABORTED' | 'EINPUT' | 'ETOOBIG'
  // inspecting disk images: a helper that failed, a filesystem or path that is not there, one that will not mount,
  // a package database in an image that cannot be read (truncated, corrupt or hostile), a clone's volumes
  // not assembled beside its twin's
  | 'EINSPECT' | 'ENOFS' | 'EMOUNT' | 'ENOOS' | 'EPACKAGEDB' | 'ECLONE'
  // a file read from a disk image that is not what its format says: a Windows registry hive
  | 'EHIVE'
  // a guest errno by name (ENOENT, EISDIR…), or EGUEST for one this host has no name for
  | GuestErrno
  | 'EGUEST';

/** The errno names Node knows, as the guest's file errors are reported. */
export type GuestErrno = keyof typeof constants.errno;

/**
 * Every error the library throws on purpose is an ApplianceError with a stable `code`,
 * so callers (and the CLI) can branch on it and print one clear line instead of a stack.
 */
export class ApplianceError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  /** The error in one line, for a terminal: the message's first line (more lines may add detail). */
  get summary(): string {
    return this.message.split('\n', 1)[0]!;
  }
}

/**
 * A file of a disk image that could not be read: the guest's errno on a path of the image.
 * Its code is the errno's name (ENOENT, EUCLEAN…): a fact about the image, never a mistake
 * in the command line, whatever name it shares with one (EINVAL).
 */
export class ImageFileError extends ApplianceError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly errno: number,
    readonly path: string | Buffer,
  ) {
    super(code, message);
  }
}

/** How a caller gives a disk's format, or allows the files its header names: the library's options, or a command line's. */
export interface DiskWords {
  format(disk: string, format: string): string;
  backing(disk: string): string;
}

/** The library's words: DiskSpec's fields. */
const LIBRARY_DISK_WORDS: DiskWords = {
  format: (_disk, format) => `format: '${format}'`,
  backing: () => 'allowBackingFile: true',
};

/**
 * A disk refused before qemu sees it (its format, or other host files its header names).
 * The message says what to give instead in the library's words; `inWords` in a command
 * line's, so that each interface names its own options.
 */
export class DiskRefusedError extends ApplianceError {
  constructor(
    code: 'EDISKFORMAT' | 'EDISKBACKING',
    readonly disk: string,
    private readonly text: (words: DiskWords) => string,
  ) {
    super(code, text(LIBRARY_DISK_WORDS));
  }

  inWords(words: DiskWords): string {
    return this.text(words);
  }
}

/** How a caller names a filesystem: the library's ids (disk0:2, vg0/root), or a command line's (disk.img:2). */
export interface FilesystemWords {
  /** A filesystem's id (disk0, disk0:2, vg0/root, btrfsvol:disk0:2/@home), or a whole disk's (disk0). */
  fs(id: string): string;
  /** The name the caller gave. */
  selector(text: string): string;
}

/** The library's words: ids as they are. */
export const LIBRARY_FILESYSTEM_WORDS: FilesystemWords = { fs: (id) => id, selector: (text) => text };

/**
 * An error about filesystems of an inspection: none, or more than one, answers to the name
 * given (ENOFS); one cannot be mounted (EMOUNT). The message names them by the library's
 * ids; `inWords` as a command line names them (`disk.img:2`), so that each interface
 * says them as its user types them.
 */
export class FilesystemError extends ApplianceError {
  constructor(
    code: 'ENOFS' | 'EMOUNT',
    private readonly text: (words: FilesystemWords) => string,
  ) {
    super(code, text(LIBRARY_FILESYSTEM_WORDS));
  }

  inWords(words: FilesystemWords): string {
    return this.text(words);
  }
}
