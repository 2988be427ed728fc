/**
 * /etc/mdadm.conf as libguestfs reads it (inspect_fs_unix_fstab.ml map_md_devices): an fstab
 * line naming /dev/mdN means the array its ARRAY line gives that name, found by its UUID
 * among the arrays assembled now (which the appliance numbers as it likes: md127…).
 */
import type { FileOf } from './release-files.js';

/** Where the Linux distributions keep it (Red Hat's, Debian's). */
export const MDADM_CONF = ['/etc/mdadm.conf', '/etc/mdadm/mdadm.conf'] as const;

/** An md UUID as mdadm parses it: 32 hex digits, ":" "." "-" and spaces between them ignored; undefined if it is none. */
export function mdUuid(text: string): string | undefined {
  if (/[^0-9a-fA-F:.\- ]/.test(text)) return undefined;
  const hex = text.replace(/[:.\- ]/g, '').toLowerCase();
  return hex.length === 32 ? hex : undefined;
}

/** The arrays the files name: device name (as written after ARRAY) → UUID. Lines without both are skipped. */
export function mdadmArrays(file: FileOf): Map<string, string> {
  const arrays = new Map<string, string>();
  for (const path of MDADM_CONF) {
    const text = file(path)?.toString('utf8');
    if (!text) continue;
    // A line that starts with white space continues the one before.
    for (const line of text.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
      const words = line.replace(/#.*/, '').trim().split(/\s+/);
      if (words[0]?.toUpperCase() !== 'ARRAY') continue;
      const name = words.slice(1).find((w) => !w.includes('='));
      const uuid = words.find((w) => /^uuid=/i.test(w));
      const parsed = uuid && mdUuid(uuid.slice(5));
      if (name && parsed) arrays.set(name, parsed);
    }
  }
  return arrays;
}
