/**
 * virt-inspector's XML (guestfs-tools inspector/inspector.c, schema virt-inspector.rng):
 * the same elements in the same order, printed the same way — libxml2's text writer,
 * indented by two spaces, its escapes — so that what parses virt-inspector's output
 * parses ours. One difference on purpose: characters XML 1.0 cannot hold (control
 * characters a guest's files may have) become U+FFFD, where libxml2 would write them and
 * leave a document no parser accepts.
 */
import type { FilesystemInfo } from '../info.js';
import type { OperatingSystem } from '../os.js';
import type { Package } from '../packages.js';
import { canonicalDeviceName, libguestfsDevice } from './device-names.js';

/** A filesystem as the XML tells it; `typeVersion` is the <type version="…"> virt-inspector gives xfs (4 or 5). */
export type XmlFilesystem = Pick<FilesystemInfo, 'id' | 'type' | 'label' | 'uuid'> & { typeVersion?: string };

const NOT_XML = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g;

/** Text content as xmlEncodeSpecialChars writes it. */
const text = (s: string) =>
  s.replace(NOT_XML, '\ufffd').replace(/[&<>"\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\r': '&#13;' })[c]!);

/** An attribute value as xmlBufAttrSerializeTxtContent writes it without a document: non-ASCII as character references. */
const attr = (s: string) =>
  [...s.replace(NOT_XML, '\ufffd')]
    .map((c) => {
      const named: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\n': '&#10;', '\r': '&#13;', '\t': '&#9;' };
      if (Object.hasOwn(named, c)) return named[c];
      const code = c.codePointAt(0)!;
      return code >= 0x80 ? `&#x${code.toString(16).toUpperCase()};` : c;
    })
    .join('');

/** An element: text (even "") inline, children on their own lines, neither: <name/>. */
interface Node {
  name: string;
  attrs?: [string, string][];
  text?: string;
  children?: Node[];
}

function write(n: Node, depth: number, out: string[]): void {
  const pad = '  '.repeat(depth);
  const open = `${pad}<${n.name}${(n.attrs ?? []).map(([k, v]) => ` ${k}="${attr(v)}"`).join('')}`;
  if (n.text !== undefined) out.push(`${open}>${text(n.text)}</${n.name}>\n`);
  else if (!n.children?.length) out.push(`${open}/>\n`);
  else {
    out.push(`${open}>\n`);
    for (const c of n.children) write(c, depth + 1, out);
    out.push(`${pad}</${n.name}>\n`);
  }
}

/** strcmp's order: by bytes. */
const bytewise = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
/** An optional leaf of a filesystem or application: nothing when the value is missing or empty. */
const leaf = (name: string, value: string | number | undefined): Node[] => (value === undefined || value === '' ? [] : [{ name, text: String(value) }]);
/** An optional field of an OS: nothing when libguestfs would say "unknown" (an empty one is printed). */
const field = (name: string, value: string | undefined): Node[] => (value === undefined || value === 'unknown' ? [] : [{ name, text: value }]);

/**
 * The document virt-inspector prints for these operating systems; `filesystems` tells
 * each filesystem's type, label and UUID. With `applications` (the default when any OS
 * has its packages read) every OS has an <applications> list, empty where its packages
 * are unknown (as virt-inspector's is for a format it cannot read); without, none has.
 */
export function toInspectorXml(oses: readonly OperatingSystem[], filesystems: readonly XmlFilesystem[], opts: { applications?: boolean } = {}): string {
  const byId = new Map(filesystems.map((f) => [f.id, f]));
  const applications = opts.applications ?? oses.some((os) => os.packages);
  const out = ['<?xml version="1.0"?>\n'];
  write({ name: 'operatingsystems', children: oses.map((os) => osNode(os, byId, applications)) }, 0, out);
  return out.join('');
}

/**
 * Where a filesystem id or an unresolved fstab device goes: libguestfs's name (what it sorts
 * by) and the name it prints. A subvolume its fstab line spells otherwise ("subvol=/@/home")
 * is named as spelled there, as libguestfs names it: btrfsvol:/dev/sda1//@/home.
 */
function device(m: { id?: string; device?: string; subvol?: string }): { raw: string; shown: string } {
  const raw = m.id !== undefined ? libguestfsDevice(m.id, m.subvol) : m.device!;
  return { raw, shown: canonicalDeviceName(raw) };
}

function osNode(os: OperatingSystem, byId: Map<string, XmlFilesystem>, applications: boolean): Node {
  const fstab = os.fstab.length ? os.fstab : [{ mountpoint: '/', id: os.root }];
  const mounts = fstab
    .filter((m) => m.mountpoint.startsWith('/'))
    .map((m) => ({ m, dev: device(m).shown }))
    .sort((a, b) => Buffer.byteLength(a.m.mountpoint) - Buffer.byteLength(b.m.mountpoint) || bytewise(a.m.mountpoint, b.m.mountpoint));
  const fses = fstab.map((m) => ({ m, dev: device(m) })).sort((a, b) => bytewise(a.dev.raw, b.dev.raw));
  const children: Node[] = [
    { name: 'root', text: device({ id: os.root }).shown },
    { name: 'name', text: os.type },
    ...field('arch', os.arch),
    ...field('distro', os.distro),
    ...field('product_name', os.productName),
    ...field('product_variant', os.productVariant),
    { name: 'major_version', text: String(os.version.major) },
    { name: 'minor_version', text: String(os.version.minor) },
    ...field('package_format', os.packageFormat),
    ...field('package_management', os.packageManagement),
    ...field('windows_systemroot', os.windowsSystemroot),
    ...field('windows_current_control_set', os.windowsCurrentControlSet),
    ...(os.windowsGroupPolicy ? [{ name: 'windows_group_policy' }] : []),
    ...field('hostname', os.hostname),
    ...field('build_id', os.buildId),
    ...field('osinfo', os.osinfo),
    { name: 'mountpoints', children: mounts.map(({ m, dev }) => ({ name: 'mountpoint', attrs: [['dev', dev]], text: m.mountpoint })) },
    { name: 'filesystems', children: fses.map(({ m, dev }) => filesystemNode(dev.shown, m.id === undefined ? undefined : byId.get(m.id))) },
    ...driveMappings(os),
    ...(applications ? [{ name: 'applications', children: [...(os.packages ?? [])].sort((a, b) => bytewise(a.name, b.name)).map(application) }] : []),
  ];
  return { name: 'operatingsystem', children };
}

function filesystemNode(dev: string, f: XmlFilesystem | undefined): Node {
  const label = f?.label === undefined ? undefined : Buffer.from(f.label).toString('utf8');
  const type: Node[] = f?.type ? [{ name: 'type', text: f.type, ...(f.typeVersion ? { attrs: [['version', f.typeVersion]] } : {}) }] : [];
  return { name: 'filesystem', attrs: [['dev', dev]], children: [...type, ...leaf('label', label), ...leaf('uuid', f?.uuid)] };
}

/** Windows' drive letters, by letter (case aside). */
function driveMappings(os: OperatingSystem): Node[] {
  const letters = Object.entries(os.driveMappings ?? {}).sort(([a], [b]) => bytewise(a.toLowerCase(), b.toLowerCase()));
  if (!letters.length) return [];
  return [
    {
      name: 'drive_mappings',
      children: letters.map(([letter, id]) => ({ name: 'drive_mapping', attrs: [['name', letter]], text: device({ id }).shown })),
    },
  ];
}

function application(p: Package): Node {
  return {
    name: 'application',
    children: [
      { name: 'name', text: p.name },
      ...leaf('display_name', p.displayName),
      ...leaf('epoch', p.epoch || undefined),
      ...leaf('version', p.version),
      ...leaf('release', p.release),
      ...leaf('arch', p.arch),
      ...leaf('install_path', p.installPath),
      ...leaf('publisher', p.publisher),
      ...leaf('url', p.url),
      ...leaf('source_package', p.sourcePackage),
      ...leaf('summary', p.summary),
      ...leaf('description', p.description),
      ...leaf('class', p.class),
    ],
  };
}
