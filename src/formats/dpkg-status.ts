/**
 * dpkg's status file (/var/lib/dpkg/status): paragraphs of `Field: value` lines, one per
 * package. Read for the host's packages (host/dpkg.ts) and an inspected image's (inspect).
 */

export interface InstalledPackage {
  name: string;
  arch: string;
  version: string;
  multiArch: string;
  /** Dependency groups (Pre-Depends then Depends); each group lists alternatives. */
  depends: string[][];
  provides: string[];
}

/** `foo:any (>= 1.0)` → `foo:any`: version constraints are ignored (the host's versions are what there is). */
function dependencyNames(field: string): string[][] {
  return field
    .split(',')
    .map((group) =>
      group
        .split('|')
        .map((alt) => alt.trim().split(/[\s([]/, 1)[0]!)
        .filter(Boolean),
    )
    .filter((group) => group.length > 0);
}

/** The fields kept, by their lowercased name; every other field is skipped unread. */
const KEPT = new Set(['package', 'status', 'architecture', 'version', 'multi-arch', 'pre-depends', 'depends', 'provides']);
/** What a package list needs: no dependencies (an inspection lists packages, it does not resolve them), and what virt-inspector prints. */
const LISTED = new Set(['package', 'status', 'architecture', 'version', 'description', 'homepage', 'source']);

/**
 * Calls `each` with the `kept` fields of every package paragraph, in the file's order. One
 * pass with indexOf over the text, no line array and no map per paragraph: a Debian
 * system's status file is ~1 MB and inspection reads one on every `inspect --packages`.
 */
function paragraphs(text: string, kept: Set<string>, each: (f: Record<string, string>) => void): void {
  let f: Record<string, string> = {};
  let last = '';
  const finish = () => {
    if (f.package) each(f);
    f = {};
    last = '';
  };
  for (let at = 0; at < text.length;) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    const first = text.charCodeAt(at);
    if (end === at) {
      finish();
    } else if (first === 0x20 || first === 0x09) {
      // Continuation lines: the long description's, each without its first character (as
      // libguestfs keeps them); any other kept field's, which dpkg writes on one line anyway.
      if (last === 'description') f[last] = `${f[last]}\n${text.slice(at + 1, end)}`;
      else if (last) f[last] = `${f[last]} ${text.slice(at, end).trim()}`;
    } else {
      const colon = text.indexOf(':', at);
      last = '';
      if (colon > at && colon < end) {
        const key = text.slice(at, colon).toLowerCase();
        // The description's first line as written, trailing blanks kept (as dpkg-query and libguestfs give it).
        if (kept.has(key)) f[(last = key)] = key === 'description' ? text.slice(colon + 1, end).replace(/^[ \t]+/, '') : text.slice(colon + 1, end).trim();
      }
    }
    at = end + 1;
  }
  finish();
}

/** The installed packages with what resolving them needs (host/dpkg.ts). */
export function parseDpkgStatus(text: string): InstalledPackage[] {
  const out: InstalledPackage[] = [];
  paragraphs(text, KEPT, (f) => {
    // "install ok installed", but also "hold ok installed": what matters is the files are there.
    if (f.status?.split(/\s+/)[2] !== 'installed') return;
    out.push({
      name: f.package!,
      arch: f.architecture ?? 'all',
      version: f.version ?? '',
      multiArch: f['multi-arch'] ?? 'no',
      depends: [...dependencyNames(f['pre-depends'] ?? ''), ...dependencyNames(f.depends ?? '')],
      provides: dependencyNames(f.provides ?? '').map((g) => g[0]!),
    });
  });
  return out;
}

export interface ListedPackage {
  name: string;
  version: string;
  arch: string;
  /** The description's first line. */
  summary?: string;
  /** The rest of it, lines joined with "\n". */
  description?: string;
  /** Homepage. */
  url?: string;
  /** The source package's name (without a version in parentheses). */
  source?: string;
}

/** The installed packages as an inspected image's package list: names, versions, architectures and what virt-inspector prints of them. */
export function listDpkgPackages(text: string): ListedPackage[] {
  const out: ListedPackage[] = [];
  paragraphs(text, LISTED, (f) => {
    // virt-inspector's rule (lib/inspect-apps.c): a Status with "installed" in it (so
    // "half-installed" too), and a Version.
    if (!f.status?.includes('installed') || !f.version) return;
    const d = f.description;
    const cut = d?.indexOf('\n') ?? -1;
    out.push({
      name: f.package!,
      version: f.version ?? '',
      arch: f.architecture ?? 'all',
      summary: cut < 0 ? d : d!.slice(0, cut),
      description: cut < 0 ? undefined : d!.slice(cut + 1),
      url: f.homepage,
      source: f.source?.split(' ', 1)[0],
    });
  });
  return out;
}
