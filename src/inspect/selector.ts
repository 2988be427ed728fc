/**
 * Naming a filesystem: what `appliance ls DISK:FS` and `img.mount(FS)` take. FS is an id
 * (disk0:2, vg/lv, btrfsvol:disk0:2/@home), a partition number (on the first disk, or the
 * disk named as diskN:), an LV name, btrfsvol:PATH, a label or a UUID; nothing at all
 * names the only filesystem there is.
 */
import { ApplianceError } from '../errors.js';
import type { Disk } from './devices.js';
import type { FilesystemInfo } from './info.js';

function candidates(infos: FilesystemInfo[], selector: string): FilesystemInfo[] {
  const s = selector.trim();
  const exact = infos.filter((i) => i.id === s);
  if (exact.length) return exact;
  if (/^\d+$/.test(s)) return infos.filter((i) => i.disk === 0 && i.partition === Number(s) && !i.subvolume);
  if (s.startsWith('btrfsvol:')) {
    const path = s.slice('btrfsvol:'.length).replace(/^\/+/, '');
    return infos.filter((i) => i.subvolume !== undefined && (i.subvolume === path || i.id.endsWith(`/${path}`)));
  }
  const lv = infos.filter((i) => i.lv && (i.lv === s || i.lv.endsWith(`/${s}`)));
  if (lv.length) return lv;
  return infos.filter((i) => !i.subvolume && (String(i.label) === s || i.uuid?.toLowerCase() === s.toLowerCase()));
}

/**
 * The one filesystem `selector` names; a clear error listing the choices otherwise, and the
 * LUKS containers left locked (`locked`), where the filesystem looked for may be.
 */
export function resolveFilesystem(infos: FilesystemInfo[], disks: Disk[], selector: string, locked: { uuid: string; on?: string }[] = []): FilesystemInfo {
  const lockedNote = locked.length
    ? `; locked: ${locked.map((l) => `the LUKS container ${l.uuid}${l.on ? ` on ${l.on}` : ''}`).join(', ')} (give ${locked.length > 1 ? 'their keys' : 'its key'})`
    : '';
  const usable = infos.filter((i) => !i.error || i.type !== 'swap');
  const found = selector ? candidates(usable, selector) : usable.filter((i) => !i.subvolume && i.type !== 'swap');
  const choices = () => usable.map((i) => `${i.id} (${i.type}${i.label ? ` "${String(i.label)}"` : ''})`).join(', ');
  if (found.length === 1) return found[0]!;
  if (found.length === 0 && !usable.length) {
    const names = disks.map((d) => `disk${d.index} (${d.path})`);
    throw new ApplianceError(
      'ENOFS',
      `no filesystem we know on ${names.join(', ')}${lockedNote || `: \`appliance inspect\` shows what ${names.length > 1 ? 'they hold' : 'it holds'}`}`,
    );
  }
  if (found.length === 0) {
    throw new ApplianceError(
      'ENOFS',
      (selector ? `no filesystem "${selector}": the filesystems are ${choices()}` : `no filesystem on the disks: ${choices()}`) + lockedNote,
    );
  }
  throw new ApplianceError(
    'ENOFS',
    `${selector ? `"${selector}" names` : 'there are'} ${found.length} filesystems: name one of ${found.map((i) => i.id).join(', ')}`,
  );
}
