/**
 * Hostnames as libguestfs reads them (inspect_fs_unix.ml check_hostname_*): Linux tries
 * /etc/HOSTNAME, /etc/hostname, then HOSTNAME= in /etc/sysconfig/network; the BSDs read
 * hostname= in /etc/rc.conf; Minix /etc/hostname.file. Lines are taken as they are (no
 * trimming), as there.
 */
import type { FileOf } from './release-files.js';

export const LINUX_HOSTNAME_FILES = ['/etc/HOSTNAME', '/etc/hostname'];
export const SYSCONFIG_NETWORK = '/etc/sysconfig/network';
export const RC_CONF = '/etc/rc.conf';
export const MINIX_HOSTNAME = '/etc/hostname.file';

/** The first line that is neither empty nor a comment (check_hostname_from_file). */
export function hostnameFromFile(bytes: Buffer | undefined): string | undefined {
  return bytes
    ?.toString('utf8')
    .split('\n')
    .find((l) => l !== '' && !l.startsWith('#'));
}

/**
 * HOSTNAME in a shell-variables file, read as augeas's Shellvars lens stores it: the
 * value as written, quotes included, up to an unquoted blank, ";" or " #"; nothing when
 * the variable is set more than once (augeas then has no single value to give).
 */
export function sysconfigHostname(bytes: Buffer | undefined): string | undefined {
  const values: string[] = [];
  for (const line of bytes?.toString('utf8').split('\n') ?? []) {
    const m = /^[ \t]*(?:export[ \t]+)?HOSTNAME=(.*)$/s.exec(line); // s: a CRLF line keeps its \r, as augeas keeps it
    if (m) values.push(shellWord(m[1]!));
  }
  return values.length === 1 && values[0] !== '' ? values[0] : undefined;
}

/** A value up to its first unquoted blank or ";" (quotes kept). */
function shellWord(s: string): string {
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"') i++;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '\\') i++;
    else if (c === ' ' || c === '\t' || c === ';') return s.slice(0, i);
  }
  return s;
}

/** rc.conf's hostname= line (check_hostname_freebsd): a quoted value loses its first and last character. */
export function rcConfHostname(bytes: Buffer | undefined): string | undefined {
  const line = bytes
    ?.toString('utf8')
    .split('\n')
    .find((l) => l.startsWith('hostname='));
  if (line === undefined) return undefined;
  return line.startsWith('hostname="') || line.startsWith("hostname='") ? line.slice(10, -1) : line.slice(9);
}

/** check_hostname_linux. */
export const linuxHostname = (file: FileOf): string | undefined =>
  LINUX_HOSTNAME_FILES.map((p) => hostnameFromFile(file(p))).find((h) => h !== undefined) ?? sysconfigHostname(file(SYSCONFIG_NETWORK));
