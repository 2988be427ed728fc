/**
 * Where a Windows installation is on an NTFS filesystem, as libguestfs finds it
 * (daemon/inspect_fs_windows.ml), and which of its files inspection reads. Paths here are
 * written in lower case: every element is to be matched case-insensitively (ASCII case,
 * the first match in directory order), as libguestfs's case_sensitive_path does over
 * ntfs-3g, whose names are case-sensitive where Windows' are not.
 */
import { PE_PROBE_BYTES } from '../formats/pe.js';

/** The usual system roots, tried in this order; the first that is a system root (see windowsPaths) is the one. */
export const WINDOWS_SYSTEMROOTS = ['/windows', '/winnt', '/win32', '/win', '/reactos'] as const;

/** Read when none of WINDOWS_SYSTEMROOTS is one: its `[operating systems]` lines may name another (bootIniSystemRoots). */
export const BOOT_INI = '/boot.ini';

/** The most bytes read of each file: a hive is read whole (real SOFTWARE hives reach ~200 MiB), cmd.exe only for its headers. */
export const WINDOWS_READ_LIMITS = { hive: 512 * 1024 * 1024, cmdExe: PE_PROBE_BYTES } as const;

export interface WindowsPaths {
  /** `<root>/system32` and `<root>/system32/config` must be folders and `cmdExe` a file, or `<root>` is no system root. */
  system32: string;
  config: string;
  /** Its PE header gives the architecture (its first WINDOWS_READ_LIMITS.cmdExe bytes). */
  cmdExe: string;
  /** The registry hives HKLM\SOFTWARE and HKLM\SYSTEM: each used only when it is a regular file. */
  software: string;
  system: string;
}

export function windowsPaths(systemRoot: string): WindowsPaths {
  const system32 = `${systemRoot}/system32`;
  return {
    system32,
    config: `${system32}/config`,
    cmdExe: `${system32}/cmd.exe`,
    software: `${system32}/config/software`,
    system: `${system32}/config/system`,
  };
}

const OS_LINE = /^(multi|scsi)\((\d+)\)disk\((\d+)\)rdisk\((\d+)\)partition\((\d+)\)([^=]+)=/;

/**
 * The system roots boot.ini names, in order, as libguestfs reads them: the lines right
 * after `[operating systems]` that start with `multi(` or `scsi(` (up to the first that
 * does not), those of the form `multi(0)disk(0)rdisk(0)partition(1)\WINDOWS="…"`, with
 * backslashes turned into slashes ("/WINDOWS"). Like libguestfs, the disk and partition
 * are ignored: the root is looked for on the filesystem holding boot.ini, and the first
 * path that is a system root is used as written here (not case-resolved).
 */
export function bootIniSystemRoots(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('[operating systems]'));
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('multi(') && !line.startsWith('scsi(')) break;
    const m = OS_LINE.exec(line);
    if (m) out.push(m[6]!.replaceAll('\\', '/'));
  }
  return out;
}
