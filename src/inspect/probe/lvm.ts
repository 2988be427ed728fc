/**
 * An LVM2 physical volume, after libblkid's superblocks/lvm.c: the "LABELONE" label in one
 * of sectors 0-3, with its CRC, type "LVM2 001" and the PV UUID (32 characters, printed
 * 6-4-4-4-4-4-6). Beyond blkid: the PV header lists the metadata areas; the first one's
 * header ("mda_header") points at the current metadata text, whose first word is the
 * volume group's name. Those are read as `needs` when outside the bytes read so far.
 */
import { ascii, need, NEED_MAX, toName, u32le, u64le } from './bytes.js';
import type { DeviceBytes, Member, Name, Range } from './types.js';

const LABEL_ID = 'LABELONE';
const TYPE = 'LVM2 001';
const SECTOR = 512;
const MDA_MAGIC = ' LVM2 x[5A%r0N*>';
const MDA_HEADER = 512;
const INITIAL_CRC = 0xf597a6cf;
const CRC_NIBBLES = [
  0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0,
  0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
];

/** LVM's own CRC (seed 0xf597a6cf, reflected 0xedb88320, no final inversion). */
export function lvmCrc(b: Buffer, seed = INITIAL_CRC): number {
  let crc = seed >>> 0;
  for (let i = 0; i < b.length; i++) {
    crc = (crc ^ b[i]!) >>> 0;
    crc = ((crc >>> 4) ^ CRC_NIBBLES[crc & 0xf]!) >>> 0;
    crc = ((crc >>> 4) ^ CRC_NIBBLES[crc & 0xf]!) >>> 0;
  }
  return crc >>> 0;
}

/** A PV UUID's 32 characters as blkid and pvs print them. */
export function formatPvUuid(raw: string): string {
  const cut = [6, 4, 4, 4, 4, 4, 6];
  const parts: string[] = [];
  let at = 0;
  for (const n of cut) {
    parts.push(raw.slice(at, at + n));
    at += n;
  }
  return parts.join('-');
}

export function probeLvm(dev: DeviceBytes): Member | undefined {
  for (let sector = 0; sector < 4; sector++) {
    const label = dev.at(sector * SECTOR, SECTOR);
    if (!label || ascii(label.subarray(0, 8)) !== LABEL_ID || ascii(label.subarray(24, 32)) !== TYPE) continue;
    if (u64le(label, 8) !== sector) continue;
    if (lvmCrc(label.subarray(20)) !== u32le(label, 16)) continue;
    const uuid = formatPvUuid(ascii(label.subarray(32, 64)));
    const vg = volumeGroup(dev, label);
    return {
      kind: 'lvm-pv',
      uuid,
      version: TYPE,
      ...(vg.name !== undefined ? { name: vg.name } : {}),
      ...(vg.needs?.length ? { needs: vg.needs } : {}),
    };
  }
  return undefined;
}

/** The name of the volume group the PV belongs to, from the first metadata area. */
function volumeGroup(dev: DeviceBytes, label: Buffer): { name?: Name; needs?: Range[] } {
  const pvHeader = u32le(label, 20);
  if (pvHeader < 32 || pvHeader + 40 > SECTOR) return {};
  // after the UUID and device size: data area locations, a null one, then metadata area locations
  let at = pvHeader + 40;
  while (at + 16 <= SECTOR && u64le(label, at) !== 0) at += 16;
  at += 16;
  if (at + 16 > SECTOR) return {};
  const mda = u64le(label, at);
  if (!mda) return {};
  const header = dev.at(mda, MDA_HEADER);
  if (!header) return { needs: need(dev.size, mda, MDA_HEADER) };
  if (ascii(header.subarray(4, 20)) !== MDA_MAGIC || lvmCrc(header.subarray(4)) !== u32le(header, 0)) return {};
  const start = u64le(header, 24);
  const areaSize = u64le(header, 32);
  const textOffset = u64le(header, 40);
  const textSize = u64le(header, 48);
  if (!textOffset || !textSize || textSize > NEED_MAX || textOffset >= areaSize || start !== mda) return {};
  // the text is in a ring buffer after the header: it may wrap to the area's start
  const first = Math.min(textSize, areaSize - textOffset);
  const pieces: Range[] = [{ offset: start + textOffset, length: first }];
  if (first < textSize) pieces.push({ offset: start + MDA_HEADER, length: textSize - first });
  const bytes = pieces.map((p) => dev.at(p.offset, p.length));
  if (bytes.some((b) => !b)) return { needs: pieces.flatMap((p, i) => (bytes[i] ? [] : need(dev.size, p.offset, p.length))) };
  const text = Buffer.concat(bytes as Buffer[]);
  if (lvmCrc(text) !== u32le(header, 56)) return {};
  const m = /^\s*([^\s{]+)\s*\{/.exec(text.toString('latin1'));
  return m ? { name: toName(Buffer.from(m[1]!, 'latin1')) } : {};
}
