/**
 * What a Linux root's release files say — distribution, product name, version — by
 * libguestfs's rules (daemon/inspect_fs_unix.ml): an ordered list of (file, parser); the
 * first parser that succeeds on a file that is there ends the search. A parser that fails
 * may still have set fields (parse_generic names the distribution before it tries its
 * pattern): later rules overwrite them or, when none succeeds, they stand — as there.
 */
import { distroOfLsbId, distroOfOsReleaseId, ROLLING, type Distro } from './distros.js';

/** What the release files tell, filled in place by the rules as libguestfs's inspection_data is. */
export interface ReleaseData {
  distro?: Distro;
  productName?: string;
  version?: { major: number; minor: number };
  buildId?: string;
}

/** A file of the filesystem by its path (followed through symlinks), undefined where it is not a regular file. */
export type FileOf = (path: string) => Buffer | undefined;

type Parse = (text: string, data: ReleaseData, file: FileOf) => boolean;

/**
 * The patterns below backtrack (".*release (\d+).*Update"): on a crafted first line they
 * take cubic time, so they see at most this much of it (a real one is under 100).
 */
const MATCHED_MAX = 1024;

/** A decimal number as OCaml's int_of_string reads \d+ (one too large for a double counts as none). */
function int(digits: string | undefined): number | undefined {
  if (digits === undefined) return undefined;
  const n = Number(digits);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** parse_version_from_major_minor: the first "N.M" anywhere, else the first "N" (minor 0); else the version is left as it was. */
export function parseMajorMinor(text: string, data: ReleaseData): void {
  const s = text.slice(0, MATCHED_MAX);
  const m = /(\d+)\.(\d+)/.exec(s);
  if (m) {
    const [major, minor] = [int(m[1]), int(m[2])];
    if (major !== undefined && minor !== undefined) data.version = { major, minor };
    return;
  }
  const major = int(/(\d+)/.exec(s)?.[1]);
  if (major !== undefined) data.version = { major, minor: 0 };
}

/** The file's lines as libguestfs splits them: on "\n" alone (a final newline leaves an empty last line). */
const lines = (text: string) => text.split('\n');

/** KEY=VALUE lines: blank lines and lines starting with "#" skipped, split at the first "=" (none: an empty value). */
export function keyValues(text: string, unquote: (v: string) => string): [string, string][] {
  return lines(text)
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const eq = l.indexOf('=');
      return eq < 0 ? [l, ''] : [l.slice(0, eq), unquote(l.slice(eq + 1))];
    });
}

/** Quotes around the whole value removed, nothing else (simple_unquote). */
export function simpleUnquote(s: string): string {
  return s.length >= 2 && ((s[0] === '"' && s.at(-1) === '"') || (s[0] === "'" && s.at(-1) === "'")) ? s.slice(1, -1) : s;
}

/** A shell word's quotes removed: '…' as is, "…" with \$ \` \" \\ and \newline unescaped (guestfs_int_shell_unquote). */
export function shellUnquote(s: string): string {
  if (s.length < 2) return s;
  if (s[0] === "'" && s.at(-1) === "'") return s.slice(1, -1);
  if (s[0] !== '"' || s.at(-1) !== '"') return s;
  let out = '';
  for (let i = 1; i < s.length - 1; i++) {
    if (i < s.length - 2 && s[i] === '\\' && '$`"\\\n'.includes(s[i + 1]!)) i++;
    out += s[i];
  }
  return out;
}

/** os-release: ID, PRETTY_NAME, VERSION_ID and BUILD_ID, with libguestfs's reasons to go on to the release files. */
export function parseOsRelease(text: string, data: ReleaseData): boolean {
  for (const [key, value] of keyValues(text, shellUnquote)) {
    if (key === 'ID') data.distro = distroOfOsReleaseId(value) ?? data.distro;
    else if (key === 'PRETTY_NAME') data.productName = value;
    else if (key === 'VERSION_ID') parseVersionId(value, data);
    else if (key === 'BUILD_ID') data.buildId = value;
  }
  if (!data.distro || data.productName === undefined) return false;
  // Debian's and CentOS's VERSION_ID is the major version alone: their release files have the minor.
  if (['debian', 'centos', 'circle', 'rocky'].includes(data.distro) && data.version?.minor === 0) return false;
  if (!data.version && ROLLING.has(data.distro)) {
    data.version = { major: 0, minor: 0 };
    return true;
  }
  return data.version !== undefined;
}

/** NeoKylin writes VERSION_ID as "V7Update6". */
function parseVersionId(value: string, data: ReleaseData): void {
  const m = /^V(\d+)Update(\d+)$/.exec(value.slice(0, MATCHED_MAX));
  const [major, minor] = [int(m?.[1]), int(m?.[2])];
  if (m && major !== undefined && minor !== undefined) data.version = { major, minor };
  else if (!m) parseMajorMinor(value, data);
}

/** lsb-release (Ubuntu, Mint, CoreOS): successful once it names a known DISTRIB_ID or has a DISTRIB_DESCRIPTION. */
export function parseLsbRelease(text: string, data: ReleaseData): boolean {
  let ok = false;
  for (const [key, value] of keyValues(text, simpleUnquote)) {
    if (key === 'DISTRIB_ID') {
      const distro = distroOfLsbId(value);
      if (distro) [data.distro, ok] = [distro, true];
    } else if (key === 'DISTRIB_RELEASE') parseMajorMinor(value, data);
    else if (key === 'DISTRIB_DESCRIPTION') [data.productName, ok] = [value, true];
  }
  return ok;
}

/** SuSE-release: the product on line 1; SLES and NLD give VERSION = and PATCHLEVEL = on lines 2 and 3, openSUSE its version on line 2. */
function parseSuseRelease(text: string, data: ReleaseData): boolean {
  const all = lines(text).map((l) => l.slice(0, MATCHED_MAX));
  const product = lines(text)[0]!;
  data.productName = product;
  if (/^SUSE (Linux|LINUX) Enterprise /.test(all[0]!) || /^Novell Linux Desktop /.test(all[0]!)) {
    const major = int(/^VERSION = (\d+)/.exec(all[1] ?? '')?.[1]);
    const minor = int(/^PATCHLEVEL = (\d+)/.exec(all[2] ?? '')?.[1]);
    data.distro = 'sles';
    data.version = major === undefined ? undefined : { major, minor: minor ?? 0 };
  } else if (/^(openSUSE|SuSE Linux|SUSE LINUX) /.test(all[0]!)) {
    if (all.length >= 2) parseMajorMinor(all[1]!, data);
    data.distro = 'opensuse';
  }
  return true;
}

/** The first line, as OCaml's input_line reads it ("" for an empty file). */
export const firstLine = (text: string) => text.split('\n', 1)[0]!;

/**
 * parse_generic: the first line is the product name and the distribution is `distro`;
 * with a pattern, it must match (its groups are major and minor), else a version is
 * looked for anywhere in the line.
 */
export function generic(distro: Distro, pattern?: RegExp): Parse {
  return (text, data) => {
    const product = firstLine(text);
    if (product === '') return false;
    data.productName = product;
    data.distro = distro;
    if (!pattern) {
      parseMajorMinor(product, data);
      return true;
    }
    const m = pattern.exec(product.slice(0, MATCHED_MAX));
    if (!m) return false;
    const [major, minor] = [int(m[1]), int(m[2])];
    if (major !== undefined) data.version = { major, minor: minor ?? 0 };
    return true;
  };
}

/** A rule that names the distribution and succeeds, whatever the file holds. */
const only =
  (distro: Distro): Parse =>
  (_text, data) => {
    data.distro = distro;
    return true;
  };

/** "<Name>.*release N.M", "… release N" and the old "… release N … Update M" of the Red Hat family. */
interface Family {
  old: RegExp;
  minor: RegExp;
  major: RegExp;
}
const family = (name: string): Family => ({
  old: new RegExp(`${name}.*release (\\d+).*Update (\\d+)`, 's'),
  minor: new RegExp(`${name}.*release (\\d+)\\.(\\d+)`, 's'),
  major: new RegExp(`${name}.*release (\\d+)`, 's'),
});
const ORACLE = family('Oracle Linux');
const CENTOS = family('CentOS');
const CIRCLE = family('Circle Linux');
const ROCKY = family('Rocky Linux');
const RHEL = family('Red Hat');
const SCIENTIFIC = family('Scientific Linux');

/** A family's patterns (without the old "Update" form for the newer ones) as consecutive rules of one file. */
const rules = (path: string, distro: Distro, f: Family, old = true) =>
  [...(old ? [f.old] : []), f.minor, f.major].map((re) => ({ path, parse: generic(distro, re) }));

/** CirrOS's logo: how its /etc/br-version is told from Buildroot's. */
export const CIRROS_LOGO = '/usr/share/cirros/logo';

/** linux_root_tests, in libguestfs's order. */
export const LINUX_RELEASE_RULES: { path: string; parse: Parse }[] = [
  { path: '/etc/os-release', parse: parseOsRelease },
  { path: '/etc/lsb-release', parse: parseLsbRelease },
  // OpenMandriva and the RHEL rebuilds also have /etc/redhat-release: theirs come first.
  { path: '/etc/openmandriva-release', parse: generic('openmandriva', /OpenMandriva.*release (\d+)\.(\d+)\.?(\d+)? .*/s) },
  { path: '/etc/opencloudos-release', parse: generic('opencloudos', /OpenCloudOS.*release (\d+)/s) },
  { path: '/etc/tencentos-release', parse: generic('tencentos', /TencentOS.* (\d+)\.(\d+)/s) },
  ...rules('/etc/oracle-release', 'oraclelinux', ORACLE),
  ...rules('/etc/centos-release', 'centos', CENTOS),
  ...rules('/etc/circle-release', 'circle', CIRCLE, false),
  ...rules('/etc/rocky-release', 'rocky', ROCKY, false),
  { path: '/etc/altlinux-release', parse: generic('altlinux') },
  { path: '/etc/redhat-release', parse: generic('fedora', /Fedora release (\d+)/s) },
  ...rules('/etc/redhat-release', 'rhel', RHEL),
  ...rules('/etc/redhat-release', 'centos', CENTOS),
  ...rules('/etc/redhat-release', 'circle', CIRCLE, false),
  ...rules('/etc/redhat-release', 'rocky', ROCKY, false),
  ...rules('/etc/redhat-release', 'scientificlinux', SCIENTIFIC),
  // A redhat-release nothing above recognises: a Red Hat-based distribution (AlmaLinux among them).
  { path: '/etc/redhat-release', parse: generic('redhat-based') },
  { path: '/etc/redhat-release', parse: only('redhat-based') },
  { path: '/etc/debian_version', parse: generic('debian') },
  { path: '/etc/pardus-release', parse: generic('pardus') },
  // Arch's file is empty: it names the distribution and nothing else.
  { path: '/etc/arch-release', parse: only('archlinux') },
  { path: '/etc/gentoo-release', parse: generic('gentoo') },
  { path: '/etc/meego-release', parse: generic('meego') },
  { path: '/etc/slackware-version', parse: generic('slackware') },
  { path: '/etc/ttylinux-target', parse: generic('ttylinux') },
  { path: '/etc/SuSE-release', parse: parseSuseRelease },
  { path: '/etc/SuSE-release', parse: only('suse-based') },
  { path: '/etc/cirros/version', parse: generic('cirros') },
  // YYYY.MM[-…]: CirrOS, built with Buildroot, is known by its logo.
  { path: '/etc/br-version', parse: (text, data, file) => generic(file(CIRROS_LOGO) ? 'cirros' : 'buildroot')(text, data, file) },
  { path: '/etc/alpine-release', parse: generic('alpinelinux') },
  { path: '/etc/frugalware-release', parse: generic('frugalware', /Frugalware (\d+)\.(\d+)/s) },
  { path: '/etc/pld-release', parse: generic('pldlinux', /(\d+)\.(\d+) PLD Linux/s) },
];

/** hurd_root_tests: Debian GNU/Hurd. */
export const HURD_RELEASE_RULES: { path: string; parse: Parse }[] = [
  { path: '/etc/os-release', parse: parseOsRelease },
  { path: '/etc/debian_version', parse: generic('debian') },
];

/** Runs the rules in order on the files that are there, until one succeeds (check_tests). */
export function applyRules(rules: { path: string; parse: Parse }[], file: FileOf, data: ReleaseData): void {
  for (const rule of rules) {
    const bytes = file(rule.path);
    if (bytes && rule.parse(bytes.toString('utf8'), data, file)) return;
  }
}

/** Every file the rules read (/etc/br-version's also asks whether CIRROS_LOGO is there). */
export const RELEASE_FILES = [...new Set(LINUX_RELEASE_RULES.map((r) => r.path))];
