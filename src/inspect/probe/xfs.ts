/**
 * The XFS superblock, big-endian at offset 0. Sanity checks as libblkid's superblocks/xfs.c
 * (geometry fields consistent with each other, and the CRC of a version 5 superblock).
 * Whether the log is clean is not in the superblock: `dirty` stays undefined.
 */
import { byteLabel, crc32c, mul, u16be, u32be, u32le, u64be, u8, uuid, withZeroed } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

const MAGIC = 0x58465342; // "XFSB"
const VERSION_MOREBITS = 0x8000;
const VERSION2_CRC = 0x100;
const CRC_OFFSET = 224;

export function probeXfs(dev: DeviceBytes): Filesystem | undefined {
  const sb = dev.at(0, 512);
  if (!sb || u32be(sb, 0) !== MAGIC) return undefined;
  const blockSize = u32be(sb, 4);
  const dblocks = u64be(sb, 8);
  const rextsize = u32be(sb, 80);
  const agblocks = u32be(sb, 84);
  const agcount = u32be(sb, 88);
  const version = u16be(sb, 100);
  const sectSize = u16be(sb, 102);
  const inodeSize = u16be(sb, 104);
  const blockLog = u8(sb, 120);
  const sectLog = u8(sb, 121);
  const inodeLog = u8(sb, 122);
  const inopbLog = u8(sb, 123);
  const imaxPct = u8(sb, 127);
  const features2 = u32be(sb, 200);
  const rext = rextsize * blockSize;
  const sane =
    agcount > 0 &&
    sectSize >= 512 &&
    sectSize <= 32768 &&
    sectLog >= 9 &&
    sectLog <= 15 &&
    sectSize === 2 ** sectLog &&
    blockSize >= 512 &&
    blockSize <= 65536 &&
    blockLog >= 9 &&
    blockLog <= 16 &&
    blockSize === 2 ** blockLog &&
    inodeSize >= 256 &&
    inodeSize <= 2048 &&
    inodeLog >= 8 &&
    inodeLog <= 11 &&
    inodeSize === 2 ** inodeLog &&
    blockLog - inodeLog === inopbLog &&
    rext >= 4096 &&
    rext <= 1 << 30 &&
    imaxPct <= 100 &&
    dblocks !== 0 &&
    dblocks <= agcount * agblocks &&
    dblocks >= (agcount - 1) * agblocks + 64;
  if (!sane) return undefined;
  if ((version & 0x0f) === 5) {
    if (!(version & VERSION_MOREBITS) || !(features2 & VERSION2_CRC)) return undefined;
    const sector = dev.at(0, sectSize);
    if (!sector || crc32c(withZeroed(sector, CRC_OFFSET, 4)) !== u32le(sector, CRC_OFFSET)) return undefined;
  }
  const label = byteLabel(sb.subarray(108, 120));
  const id = uuid(sb.subarray(32, 48));
  const size = mul(dblocks, blockSize);
  return {
    kind: 'filesystem',
    type: 'xfs',
    ...(label !== undefined ? { label } : {}),
    ...(id ? { uuid: id } : {}),
    ...(size !== undefined ? { size } : {}),
    blockSize,
  };
}
