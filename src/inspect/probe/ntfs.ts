/**
 * NTFS, after libblkid's superblocks/ntfs.c: the boot sector's BIOS parameter block (the
 * fields FAT uses must be zero), then records 0 ($MFT) and 3 ($Volume) of the MFT must
 * start with "FILE" — read as a `needs` range when the MFT lies outside the bytes read.
 * The label is $Volume's VOLUME_NAME attribute (UTF-16). The serial is the UUID, 16 upper
 * case hex digits as blkid prints it. Dirty: VOLUME_INFORMATION's dirty flag, chkdsk due
 * (Windows found an inconsistency, or did not shut down cleanly).
 */
import { ascii, need, u16le, u32le, u64le, u8, utf16Label } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

const MAX_CLUSTER = 2 * 1024 * 1024;
/** libblkid allows MFT records up to 1 GiB; real ones are 1 or 4 KiB. We read up to this. */
const MAX_RECORD = 64 * 1024;
const RECORD_VOLUME = 3;
const ATTR_VOLUME_NAME = 0x60;
const ATTR_VOLUME_INFORMATION = 0x70;
const VOLUME_IS_DIRTY = 0x0001;
const ATTR_END = 0xffffffff;
/** Update sequence arrays protect every 512 bytes of a record. */
const USA_STRIDE = 512;

interface Boot {
  b: Buffer;
  sectorSize: number;
  clusterBytes: number;
  recordSize: number;
  mft: number;
}

function boot(dev: DeviceBytes): Boot | undefined {
  const b = dev.at(0, 512);
  if (!b || ascii(b.subarray(3, 11)) !== 'NTFS    ') return undefined;
  const sectorSize = u16le(b, 11);
  if (sectorSize < 256 || sectorSize > 4096 || (sectorSize & (sectorSize - 1)) !== 0) return undefined;
  const spcRaw = u8(b, 13);
  let spc: number;
  if ([1, 2, 4, 8, 16, 32, 64, 128].includes(spcRaw)) spc = spcRaw;
  else if (spcRaw >= 240 && spcRaw <= 249) spc = 2 ** (256 - spcRaw);
  else return undefined;
  const clusterBytes = sectorSize * spc;
  if (clusterBytes > MAX_CLUSTER) return undefined;
  if (u16le(b, 14) || u16le(b, 17) || u16le(b, 19) || u16le(b, 22) || u32le(b, 32) || u8(b, 16)) return undefined;
  const cpmr = u8(b, 64);
  if ((cpmr < 0xe1 || cpmr > 0xf7) && ![1, 2, 4, 8, 16, 32, 64].includes(cpmr)) return undefined;
  const signed = cpmr > 127 ? cpmr - 256 : cpmr;
  const recordSize = signed > 0 ? signed * clusterBytes : 2 ** -signed;
  if (recordSize < 4 || recordSize > MAX_RECORD) return undefined;
  const sectors = u64le(b, 40);
  const clusters = Math.floor(sectors / spc);
  const mftLcn = u64le(b, 48);
  if (mftLcn > clusters || u64le(b, 56) > clusters) return undefined;
  return { b, sectorSize, clusterBytes, recordSize, mft: mftLcn * clusterBytes };
}

/** Whether sector 0 is an NTFS boot sector (so not an MBR); the MFT is not needed for that. */
export function isNtfs(dev: DeviceBytes): boolean {
  return boot(dev) !== undefined;
}

export function probeNtfs(dev: DeviceBytes): Filesystem | undefined {
  const s = boot(dev);
  if (!s) return undefined;
  const { b, recordSize } = s;
  const serial = Buffer.from(b.subarray(72, 80)).reverse().toString('hex').toUpperCase();
  const size = u64le(b, 40) * s.sectorSize;
  const found: Filesystem = {
    kind: 'filesystem',
    type: 'ntfs',
    uuid: serial,
    ...(Number.isSafeInteger(size) ? { size } : {}),
    blockSize: s.clusterBytes,
  };
  const records = dev.at(s.mft, recordSize * (RECORD_VOLUME + 1));
  if (!records) {
    const needs = need(dev.size, s.mft, recordSize * (RECORD_VOLUME + 1));
    return needs.length ? { ...found, needs } : undefined;
  }
  const volume = records.subarray(RECORD_VOLUME * recordSize);
  if (ascii(records.subarray(0, 4)) !== 'FILE' || ascii(volume.subarray(0, 4)) !== 'FILE') return undefined;
  const fixed = fixups(volume);
  const name = attribute(fixed, ATTR_VOLUME_NAME);
  const label = name && utf16Label(name, 'le');
  // VOLUME_INFORMATION: 8 reserved bytes, the major and minor version, then u16 flags.
  const information = attribute(fixed, ATTR_VOLUME_INFORMATION);
  const dirty = information && information.length >= 12 ? (u16le(information, 10) & VOLUME_IS_DIRTY) !== 0 : undefined;
  return { ...found, ...(label !== undefined ? { label } : {}), ...(dirty !== undefined ? { dirty } : {}) };
}

/** The record with its update sequence applied (when the sequence numbers match; else as read). */
function fixups(record: Buffer): Buffer {
  const usaOffset = u16le(record, 4);
  const usaCount = u16le(record, 6);
  if (usaCount < 2 || usaOffset + usaCount * 2 > record.length) return record;
  const fixed = Buffer.from(record);
  const usn = u16le(record, usaOffset);
  for (let i = 1; i < usaCount; i++) {
    const end = i * USA_STRIDE - 2;
    if (end + 2 > record.length) break;
    if (u16le(record, end) !== usn) return record;
    fixed[end] = record[usaOffset + i * 2]!;
    fixed[end + 1] = record[usaOffset + i * 2 + 1]!;
  }
  return fixed;
}

/** The value of a record's resident attribute of `type` (the first one), if it is there and whole. */
function attribute(record: Buffer, type: number): Buffer | undefined {
  const allocated = u32le(record, 28);
  let at = u16le(record, 20);
  while (at + 24 <= record.length && at <= allocated) {
    const t = u32le(record, at);
    const len = u32le(record, at + 4);
    if (!len || t === ATTR_END) break;
    if (t === type) {
      const valueLen = u32le(record, at + 16);
      const valueOffset = u16le(record, at + 20);
      if (at + valueOffset + valueLen > record.length) return undefined;
      return record.subarray(at + valueOffset, at + valueOffset + valueLen);
    }
    at += len;
  }
  return undefined;
}
