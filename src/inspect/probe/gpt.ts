/**
 * The GUID partition table. Rules as libblkid's partitions/gpt.c: a protective MBR (an
 * entry of type 0xEE) must be there; the primary header at LBA 1, else the backup at the
 * last LBA, is used when its CRC, its own LBA, its usable range and its entries' CRC all
 * check out. Entries whose type is all zero, or that leave the usable range, are skipped
 * but keep their number. Both headers bad under a protective MBR: blkid's "PMBR"
 * (`protectiveOnly`).
 */
import { crc32, guid, isZero, NEED_MAX, need, u32le, u64le, utf16Label, withZeroed } from './bytes.js';
import { hasProtectiveEntry } from './mbr.js';
import type { DeviceBytes, PartitionEntry, PartitionTable, Range } from './types.js';

const SIGNATURE = Buffer.from('EFI PART', 'latin1');
const HEADER_MIN = 92;
const ENTRY_SIZE = 128;
/** libblkid ignores GPT on devices up to a 1.44 MB floppy. */
const MIN_DEVICE = 1440 * 1024 + 1;
/** LegacyBIOSBootable, attribute bit 2. */
const LEGACY_BOOTABLE = 4;
const NO_SIGNATURE = 'no "EFI PART" signature';

type Header =
  { ok: true; diskGuid: string; firstUsable: number; lastUsable: number; entries: Buffer; count: number } | { ok: false; needs?: Range[]; why?: string };

/** The GPT of the device, blkid's PMBR when both headers are bad, or undefined. */
export function probeGpt(dev: DeviceBytes): PartitionTable | undefined {
  const ss = dev.sectorSize;
  if (dev.size < MIN_DEVICE || dev.size < ss || !hasProtectiveEntry(dev)) return undefined;
  const lastLba = Math.floor(dev.size / ss) - 1;

  // The primary header, else (only when it is bad, not when its entries are still unread) the backup.
  const primary = header(dev, 1, lastLba);
  let h = primary;
  if (!h.ok && !h.needs) h = header(dev, lastLba, lastLba);
  if (!h.ok) {
    if (h.needs) return { kind: 'partition-table', type: 'gpt', partitions: [], needs: h.needs };
    const why = [primary, h].map((x, i) => `${i ? 'backup' : 'primary'} header: ${(!x.ok && x.why) || 'not there'}`).join('; ');
    return { kind: 'partition-table', type: 'gpt', protectiveOnly: true, partitions: [], note: `no valid GPT header (${why})` };
  }
  // A primary with a GPT signature that was refused: said, and the backup used (as sgdisk and the kernel do).
  const note =
    !primary.ok && primary.why && primary.why !== NO_SIGNATURE ? `the primary GPT header was refused (${primary.why}): the backup header was used` : undefined;

  const partitions: PartitionEntry[] = [];
  for (let i = 0; i < h.count; i++) {
    const e = h.entries.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE);
    if (isZero(e.subarray(0, 16))) continue;
    const first = u64le(e, 32);
    const last = u64le(e, 40);
    if (last < first || first < h.firstUsable || last > h.lastUsable) continue;
    const name = utf16Label(e.subarray(56, 128), 'le');
    partitions.push({
      number: i + 1,
      start: first * ss,
      size: (last - first + 1) * ss,
      type: guid(e.subarray(0, 16)),
      uuid: guid(e.subarray(16, 32)),
      ...(name !== undefined ? { name } : {}),
      bootable: (u32le(e, 48) & LEGACY_BOOTABLE) !== 0,
    });
  }
  return { kind: 'partition-table', type: 'gpt', id: h.diskGuid, partitions, ...(note ? { note } : {}) };
}

function header(dev: DeviceBytes, lba: number, lastLba: number): Header {
  const ss = dev.sectorSize;
  const h = dev.at(lba * ss, ss);
  if (!h) {
    const wanted = need(dev.size, lba * ss, ss);
    return wanted.length ? { ok: false, needs: wanted } : { ok: false };
  }
  if (!h.subarray(0, 8).equals(SIGNATURE)) return { ok: false, why: NO_SIGNATURE };
  const size = u32le(h, 12);
  if (size > ss || size < HEADER_MIN) return { ok: false, why: `its size ${size} is not from ${HEADER_MIN} to ${ss} bytes` };
  if (crc32(withZeroed(h.subarray(0, size), 16, 4)) !== u32le(h, 16)) return { ok: false, why: 'its CRC does not match' };
  if (u64le(h, 24) !== lba) return { ok: false, why: `it says it is at LBA ${u64le(h, 24)}, not ${lba}` };
  const firstUsable = u64le(h, 40);
  const lastUsable = u64le(h, 48);
  if (lastUsable < firstUsable || firstUsable > lastLba || lastUsable > lastLba || (firstUsable < lba && lba < lastUsable))
    return { ok: false, why: `its usable range ${firstUsable}-${lastUsable} does not fit the disk's ${lastLba + 1} sectors` };
  const count = u32le(h, 80);
  const entrySize = u32le(h, 84);
  const bytes = count * entrySize;
  // libblkid refuses 4 GiB of entries; we refuse more than one `needs` range can hold.
  if (entrySize !== ENTRY_SIZE) return { ok: false, why: `its entries are ${entrySize} bytes each, not ${ENTRY_SIZE}` };
  if (bytes === 0 || bytes > NEED_MAX) return { ok: false, why: `it claims ${count} entries (${bytes} bytes; at most ${NEED_MAX / ENTRY_SIZE} are read)` };
  const at = u64le(h, 72) * ss;
  const entries = dev.at(at, bytes);
  if (!entries) {
    const wanted = need(dev.size, at, bytes);
    return wanted.length ? { ok: false, needs: wanted } : { ok: false, why: `its entries at byte ${at} lie past the end of the disk` };
  }
  if (crc32(entries) !== u32le(h, 88)) return { ok: false, why: `its ${count} entries' CRC does not match` };
  return { ok: true, diskGuid: guid(h.subarray(56, 72)), firstUsable, lastUsable, entries, count };
}
