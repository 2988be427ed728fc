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

/** The packages whose files are installed, in the file's order. */
export function parseDpkgStatus(text: string): InstalledPackage[] {
  const out: InstalledPackage[] = [];
  let fields = new Map<string, string>();
  let last = '';
  const finish = () => {
    const status = fields.get('status')?.split(/\s+/) ?? [];
    const name = fields.get('package');
    // "install ok installed", but also "hold ok installed": what matters is the files are there.
    if (name && status[2] === 'installed') {
      out.push({
        name,
        arch: fields.get('architecture') ?? 'all',
        version: fields.get('version') ?? '',
        multiArch: fields.get('multi-arch') ?? 'no',
        depends: [...dependencyNames(fields.get('pre-depends') ?? ''), ...dependencyNames(fields.get('depends') ?? '')],
        provides: dependencyNames(fields.get('provides') ?? '').map((g) => g[0]!),
      });
    }
    fields = new Map();
    last = '';
  };
  for (const line of text.split('\n')) {
    if (line === '') {
      finish();
    } else if (line[0] === ' ' || line[0] === '\t') {
      // Continuation lines (Description, Conffiles) carry nothing we use, except
      // for fields we keep, which dpkg writes on one line anyway.
      if (last === 'depends' || last === 'pre-depends' || last === 'provides') fields.set(last, `${fields.get(last)} ${line.trim()}`);
    } else {
      const colon = line.indexOf(':');
      if (colon > 0) {
        last = line.slice(0, colon).toLowerCase();
        fields.set(last, line.slice(colon + 1).trim());
      }
    }
  }
  finish();
  return out;
}
