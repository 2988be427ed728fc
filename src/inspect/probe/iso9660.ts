/**
 * ISO 9660 (with Joliet), after libblkid's superblocks/iso9660.c: the volume descriptor at
 * 32 KiB ("CD001"), then up to 16 more descriptors for a Joliet supplementary one. The
 * label is the primary descriptor's volume id, or Joliet's (UTF-16) when it says more. The
 * UUID is the modification date, else the creation date, "YYYY-MM-DD-HH-MM-SS-CC".
 */
import { ascii, byteLabel, u16le, u32le, utf16Label } from './bytes.js';
import type { DeviceBytes, Filesystem, Name } from './types.js';

const OFFSET = 0x8000;
const SECTOR = 0x800;
const MAX_DESCRIPTORS = 16;
const VD_SUPPLEMENTARY = 2;
const VD_END = 0xff;

export function probeIso9660(dev: DeviceBytes): Filesystem | undefined {
  const pvd = dev.at(OFFSET, SECTOR);
  if (!pvd || ascii(pvd.subarray(1, 6)) !== 'CD001') return undefined;
  const volumeId = pvd.subarray(40, 72);
  let label: Name | undefined = byteLabel(volumeId);
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const vd = dev.at(OFFSET + SECTOR * (i + 1), SECTOR);
    if (!vd || vd[0] === VD_END) break;
    if (vd[0] !== VD_SUPPLEMENTARY) continue;
    const esc = ascii(vd.subarray(88, 91));
    if (esc !== '%/@' && esc !== '%/C' && esc !== '%/E') continue;
    // Joliet: its label, unless it is the primary one (maybe cut short by UTF-16)
    if (!sameAsUtf16(volumeId, vd.subarray(40, 72))) label = utf16Label(vd.subarray(40, 72), 'be');
    break;
  }
  const id = dateUuid(pvd.subarray(830, 847)) ?? dateUuid(pvd.subarray(813, 830));
  const blockSize = u16le(pvd, 128) || SECTOR;
  const size = u32le(pvd, 80) * blockSize;
  return {
    kind: 'filesystem',
    type: 'iso9660',
    ...(label !== undefined ? { label } : {}),
    ...(id ? { uuid: id } : {}),
    size,
    blockSize,
  };
}

/** Whether the UTF-16BE `utf16` (32 bytes) spells the first 16 characters of `asciiId`. */
function sameAsUtf16(asciiId: Buffer, utf16: Buffer): boolean {
  for (let u = 0, a = 0; u < 32; u += 2, a++) if (utf16[u] !== 0 || asciiId[a] !== utf16[u + 1]) return false;
  return true;
}

/** A date of 16 digits and a zone offset: unset when all digits are '0' and the offset 0. */
function dateUuid(d: Buffer): string | undefined {
  const digits = ascii(d.subarray(0, 16));
  if (!/^[0-9]{16}$/.test(digits)) return undefined;
  if (digits === '0'.repeat(16) && d[16] === 0) return undefined;
  const p = (a: number, b: number) => digits.slice(a, b);
  return `${p(0, 4)}-${p(4, 6)}-${p(6, 8)}-${p(8, 10)}-${p(10, 12)}-${p(12, 14)}-${p(14, 16)}`;
}
