/**
 * The f2fs superblock at 1 KiB, after libblkid's superblocks/f2fs.c: magic, version and,
 * when the superblock says where it keeps one, its CRC. Label in UTF-16.
 */
import { crc32Raw, mul, u16le, u32le, u64le, utf16Label, uuid } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

const OFFSET = 0x400;
const MAGIC = 0xf2f52010;

export function probeF2fs(dev: DeviceBytes): Filesystem | undefined {
  const sb = dev.at(OFFSET, 0x47c);
  if (!sb || u32le(sb, 0) !== MAGIC) return undefined;
  const major = u16le(sb, 4);
  const minor = u16le(sb, 6);
  // version 1.0 superblocks have another layout: nothing more to read
  if (major === 1 && minor === 0) return { kind: 'filesystem', type: 'f2fs' };
  const csumOffset = u32le(sb, 0x20);
  if (csumOffset) {
    if (csumOffset % 4 !== 0 || csumOffset + 4 > 4096) return undefined;
    const whole = dev.at(OFFSET, csumOffset + 4);
    if (!whole || crc32Raw(MAGIC, whole.subarray(0, csumOffset)) !== u32le(whole, csumOffset)) return undefined;
  }
  const label = sb[0x7c] ? utf16Label(sb.subarray(0x7c, 0x47c), 'le') : undefined;
  const id = uuid(sb.subarray(0x6c, 0x7c));
  const log = u32le(sb, 0x10);
  const blockSize = log < 31 ? 2 ** log : undefined;
  const size = blockSize ? mul(u64le(sb, 0x24), blockSize) : undefined;
  return {
    kind: 'filesystem',
    type: 'f2fs',
    ...(label !== undefined ? { label } : {}),
    ...(id ? { uuid: id } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(blockSize ? { blockSize } : {}),
  };
}
