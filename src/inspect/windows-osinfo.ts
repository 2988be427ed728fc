/**
 * libosinfo's short id of a Windows version, as libguestfs derives it
 * (lib/inspect-osinfo.c): from the major and minor version, and, where one version number
 * serves several products, from the product variant ("Server"), the product name ("R2",
 * "2019") or the build (Windows 11 is 10.0 from build 22000).
 */

interface Version {
  version: { major: number; minor: number };
  productName?: string;
  productVariant?: string;
  buildId?: string;
}

/** guestfs_int_parse_unsigned_int (strtol, base 10, the whole text): undefined where libguestfs fails (and on -1, its error value). */
function parseBuild(text: string | undefined): number | undefined {
  if (text === undefined || !/^[ \t\n\v\f\r]*[+-]?\d+$/.test(text)) return undefined;
  const n = BigInt(text.trim());
  if (n > 0x7fff_ffff_ffff_ffffn || n < -0x8000_0000_0000_0000n) return undefined;
  const int = Number(BigInt.asIntN(32, n));
  return int === -1 ? undefined : int;
}

/** The short id; "unknown" when no rule fits, undefined when a Windows 10/11 client's build does not parse (libguestfs then has none). */
export function windowsOsinfo(facts: Version): string | undefined {
  const { major, minor } = facts.version;
  // libguestfs's getters give "unknown" for a missing name or variant
  const name = facts.productName ?? 'unknown';
  const server = (facts.productVariant ?? 'unknown').includes('Server');
  if (major === 5 && minor === 1) return 'winxp';
  if (major === 5 && minor === 2) return name.includes('XP') ? 'winxp' : name.includes('R2') ? 'win2k3r2' : 'win2k3';
  if (major === 6 && minor >= 0 && minor <= 3) return (server ? ['win2k8', 'win2k8r2', 'win2k12', 'win2k12r2'] : ['winvista', 'win7', 'win8', 'win8.1'])[minor];
  if (major === 10 && minor === 0) {
    if (server) return name.includes('2025') ? 'win2k25' : name.includes('2022') ? 'win2k22' : name.includes('2019') ? 'win2k19' : 'win2k16';
    const build = parseBuild(facts.buildId ?? 'unknown');
    return build === undefined ? undefined : build >= 22000 ? 'win11' : 'win10';
  }
  return 'unknown';
}
