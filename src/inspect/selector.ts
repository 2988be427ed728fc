/**
 * Naming a filesystem: what `appliance ls DISK:FS` and `img.mount(FS)` take. FS is an id
 * (disk0:2, vg/lv, btrfsvol:disk0:2/@home), a partition number (on the first disk, or the
 * disk named as diskN:), an LV name, btrfsvol:PATH, a label or a UUID; nothing at all
 * names the only filesystem there is.
 */
import { FilesystemError, type FilesystemWords } from '../errors.js';
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
  const lockedNote = (w: FilesystemWords) =>
    locked.length
      ? `; locked: ${locked.map((l) => `the LUKS container ${l.uuid}${l.on ? ` on ${w.fs(l.on)}` : ''}`).join(', ')} (give ${locked.length > 1 ? 'their keys' : 'its key'})`
      : '';
  const usable = infos.filter((i) => !i.error || i.type !== 'swap');
  const found = selector ? candidates(usable, selector) : usable.filter((i) => !i.subvolume && i.type !== 'swap');
  const choices = (w: FilesystemWords) => usable.map((i) => `${w.fs(i.id)} (${i.type}${i.label ? ` "${String(i.label)}"` : ''})`).join(', ');
  if (found.length === 1) return found[0]!;
  if (found.length === 0 && !usable.length) {
    throw new FilesystemError('ENOFS', (w) => {
      // A disk's own name where the caller's words have one (the image's path), else both.
      const names = disks.map((d) => (w.fs(`disk${d.index}`) === d.path ? d.path : `${w.fs(`disk${d.index}`)} (${d.path})`));
      return `no filesystem we know on ${names.join(', ')}${lockedNote(w) || `: \`appliance inspect\` shows what ${names.length > 1 ? 'they hold' : 'it holds'}`}`;
    });
  }
  if (found.length === 0) {
    throw new FilesystemError(
      'ENOFS',
      (w) =>
        (selector ? `no filesystem "${w.selector(selector)}": the filesystems are ${choices(w)}` : `no filesystem on the disks: ${choices(w)}`) + lockedNote(w),
    );
  }
  throw new FilesystemError(
    'ENOFS',
    (w) => `${selector ? `"${w.selector(selector)}" names` : 'there are'} ${found.length} filesystems: name one of ${found.map((i) => w.fs(i.id)).join(', ')}`,
  );
}
