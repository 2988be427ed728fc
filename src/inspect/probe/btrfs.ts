/**
 * The btrfs primary superblock, 4 KiB at 64 KiB. libblkid checks the magic only (newer
 * versions the checksum too); we check the magic, the superblock's own offset and, for
 * crc32c filesystems, the checksum. A log tree (log_root != 0) is a log to replay: dirty.
 */
import { byteLabel, crc32c, u16le, u32le, u64le, uuid } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

const OFFSET = 64 * 1024;
const MAGIC = Buffer.from('_BHRfS_M', 'latin1');
const MIN_DEVICE = 1024 * 1024;
const CSUM_CRC32C = 0;

export function probeBtrfs(dev: DeviceBytes): Filesystem | undefined {
  if (dev.size < MIN_DEVICE) return undefined;
  const sb = dev.at(OFFSET, 4096);
  if (!sb || !sb.subarray(64, 72).equals(MAGIC)) return undefined;
  if (u64le(sb, 48) !== OFFSET) return undefined;
  if (u16le(sb, 196) === CSUM_CRC32C && crc32c(sb.subarray(32)) !== u32le(sb, 0)) return undefined;
  const totalBytes = u64le(sb, 112);
  const devices = u64le(sb, 136);
  const sectorSize = u32le(sb, 144);
  const devid = u64le(sb, 201);
  const label = byteLabel(sb.subarray(299, 299 + 256));
  const fsid = uuid(sb.subarray(32, 48));
  const sub = uuid(sb.subarray(267, 283));
  return {
    kind: 'filesystem',
    type: 'btrfs',
    ...(label !== undefined ? { label } : {}),
    ...(fsid ? { uuid: fsid } : {}),
    ...(sub ? { subUuid: sub } : {}),
    ...(Number.isSafeInteger(totalBytes) ? { size: totalBytes } : {}),
    ...(sectorSize ? { blockSize: sectorSize } : {}),
    dirty: u64le(sb, 96) !== 0,
    ...(Number.isSafeInteger(devid) ? { devid } : {}),
    ...(Number.isSafeInteger(devices) ? { devices } : {}),
  };
}
