/** `appliance inspect`: what disk images hold: disks, volumes, filesystems, operating systems. */
import type { Command } from 'commander';
import type { Inspection } from '../../inspect/index.js';
import { packageVersion } from '../../inspect/packages.js';
import { formatSize } from '../../units.js';
import { escapeControls } from '../../printable.js';
import { action } from '../common.js';
import { json } from './format.js';
import { common, open, type CommonOptions } from './options.js';

export function register(program: Command): void {
  common(program.command('inspect'))
    .description('Tell what disk images hold: partitions, volumes, filesystems (type, label, UUID, size, use) and operating systems')
    .argument('<disk...>', 'disk images, attached read-only')
    .option('--packages', "list each OS's installed packages")
    .option('--json', 'print the result as JSON')
    .option('--xml', "print the operating systems as virt-inspector's XML (with their packages)")
    .action(
      action(async (disks: string[], o: CommonOptions & { packages?: boolean; xml?: boolean }) => {
        await using img = await open(disks, o);
        const [filesystems, os] = [await img.filesystems(), await img.os({ packages: o.packages || o.xml })];
        if (o.xml) {
          const { toInspectorXml } = await import('../../inspect/os/xml.js');
          return void process.stdout.write(toInspectorXml(os, filesystems, { applications: true }));
        }
        const result = { disks: img.disks(), volumes: img.volumes(), filesystems, os };
        if (o.json) return void json(result);
        process.stdout.write(inspectText(result, o.verbose ?? false));
      }),
    );
}

function inspectText(
  r: {
    disks: ReturnType<Inspection['disks']>;
    volumes: ReturnType<Inspection['volumes']>;
    filesystems: Awaited<ReturnType<Inspection['filesystems']>>;
    os: Awaited<ReturnType<Inspection['os']>>;
  },
  verbose: boolean,
): string {
  const size = (n?: number) => (n === undefined ? '-' : formatSize(n));
  const lines: string[] = [];
  for (const d of r.disks) {
    lines.push(
      `disk${d.index} ${d.path}: ${d.format}, ${size(d.size)}${d.partitionTable ? `, ${d.partitionTable.type} partition table${d.partitionTable.id ? ` ${d.partitionTable.id}` : ''}` : ''}`,
    );
    if (d.partitionTable?.note) lines.push(`  note: ${d.partitionTable.note}`);
    for (const p of d.partitions)
      lines.push(
        `  ${p.number}: start ${p.start}, ${size(p.size)}, type ${p.type ?? '-'}${p.name ? `, name "${String(p.name)}"` : ''}${p.uuid ? `, uuid ${p.uuid}` : ''}`,
      );
  }
  for (const g of r.volumes.lvm) lines.push(`lvm ${g.vg}: ${g.lvs.join(', ') || 'no logical volumes'}`);
  for (const m of r.volumes.md) lines.push(`md ${m.device}: ${m.level ?? ''} ${m.uuid}`);
  for (const l of r.volumes.luks.filter((x) => x.open)) lines.push(`luks ${l.uuid}${l.on ? ` on ${l.on}` : ''}: opened`);
  for (const e of r.volumes.errors) lines.push(`volumes: ${e}`);
  if (r.volumes.luks.some((l) => !l.open)) lines.push('volumes: a locked LUKS container opens with --key UUID=KEY (or --key KEY, tried on each)');
  lines.push('filesystems:');
  for (const f of r.filesystems) {
    const label = f.label !== undefined ? ` label "${String(f.label)}"` : '';
    const use = f.used !== undefined ? `, used ${size(f.used)}` : '';
    lines.push(
      `  ${f.id} ${f.type}${label}${f.uuid ? ` uuid ${f.uuid}` : ''}, size ${size(f.size)}${use}${f.dirty ? ', dirty journal (not replayed)' : ''}${f.error ? ` (${f.error})` : ''}`,
    );
    // The driver's whole log where mounting failed: --verbose.
    if (verbose) for (const l of f.mountLog ?? []) lines.push(`    ${l}`);
  }
  for (const os of r.os) {
    lines.push(
      `os on ${os.root}: ${os.productName ?? os.distro ?? 'linux'}, ${os.distro ?? '?'} ${os.version.major}.${os.version.minor}, ${os.arch ?? '?'}, hostname ${os.hostname ?? '-'}, packages ${os.packageFormat ?? '-'}/${os.packageManagement ?? '-'}`,
    );
    lines.push(
      `  mountpoints: ${Object.entries(os.mountpoints)
        .map(([m, id]) => `${m} ${id}`)
        .join(', ')}`,
    );
    if (os.packages) for (const p of os.packages) lines.push(`  ${p.name} ${packageVersion(p, os.packageFormat)} ${p.arch}`);
    if (os.packagesError) lines.push(`  packages: ${os.packagesError}`);
    for (const w of os.warnings ?? []) lines.push(`  warning: ${w}`);
  }
  // Labels, names and release files are the image's words: each line's control characters escaped.
  return `${lines.map(escapeControls).join('\n')}\n`;
}
