/**
 * LUKS1 and LUKS2 headers, after libblkid's superblocks/luks.c: "LUKS\xba\xbe" at 0, or
 * when the primary header is gone, a LUKS2 secondary header ("SKUL\xba\xbe") at one of its
 * usual offsets, whose own offset field must say where it is. UUID as stored (text);
 * LUKS2 has a label too.
 */
import { ascii, byteLabel, u16be, u64be } from './bytes.js';
import type { DeviceBytes, Member } from './types.js';

const PRIMARY = 'LUKS\xba\xbe';
const SECONDARY = 'SKUL\xba\xbe';
const SECONDARY_OFFSETS = [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000];
const HEADER = 512;

export function probeLuks(dev: DeviceBytes): Member | undefined {
  const primary = header(dev, 0, PRIMARY);
  if (primary) return primary;
  for (const off of SECONDARY_OFFSETS) {
    const h = header(dev, off, SECONDARY);
    if (h) return h;
  }
  return undefined;
}

function header(dev: DeviceBytes, off: number, magic: string): Member | undefined {
  const h = dev.at(off, HEADER);
  if (!h || ascii(h.subarray(0, 6)) !== magic) return undefined;
  const version = u16be(h, 6);
  if (version === 2 && u64be(h, 256) !== off) return undefined;
  const rawUuid = h.subarray(168, 208);
  const end = rawUuid.indexOf(0);
  const id = ascii(rawUuid.subarray(0, end < 0 ? 40 : end)).trim();
  const label = version === 2 ? byteLabel(h.subarray(24, 72)) : undefined;
  return {
    kind: 'luks',
    uuid: id,
    detail: String(version),
    version: String(version),
    ...(label !== undefined ? { name: label } : {}),
  };
}
