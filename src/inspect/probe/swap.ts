/**
 * Linux swap, after libblkid's superblocks/swap.c: the signature in the last 10 bytes of
 * the first page, for page sizes 4 to 64 KiB; the header (version, last page, UUID, label)
 * at 1024. A hibernation image in the swap area replaces the signature: "swsuspend".
 */
import { ascii, byteLabel, isZero, u32be, u32le, uuid } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

const PAGE_SIZES = [0x1000, 0x2000, 0x4000, 0x8000, 0x10000];
const MIN_DEVICE = 10 * 4096;
const HEADER = 1024;
const TUXONICE = Buffer.from([0xed, 0xc3, 0x02, 0xe9, 0x98, 0x56, 0xe5, 0x0c]);
const SUSPEND = ['S1SUSPEND', 'S2SUSPEND', 'ULSUSPEND', 'LINHIB0001'];

export function probeSwap(dev: DeviceBytes): Filesystem | undefined {
  if (dev.size < MIN_DEVICE) return undefined;
  const start = dev.at(0, 8);
  if (!start) return undefined;
  if (start.equals(TUXONICE)) return withHeader(dev, 'swsuspend', 0, false);
  // libblkid tries the hibernation signatures (swsuspend) before swap's own, page size by page size
  for (const page of PAGE_SIZES) {
    const sig = dev.at(page - 10, 10);
    if (sig && SUSPEND.some((s) => ascii(sig.subarray(0, s.length)) === s)) return withHeader(dev, 'swsuspend', page, false);
  }
  for (const page of PAGE_SIZES) {
    const sig = dev.at(page - 10, 10);
    if (!sig) continue;
    if (ascii(sig) === 'SWAP-SPACE') return { kind: 'filesystem', type: 'swap', blockSize: page };
    if (ascii(sig) === 'SWAPSPACE2') return withHeader(dev, 'swap', page, true);
  }
  return undefined;
}

function withHeader(dev: DeviceBytes, type: string, page: number, v1: boolean): Filesystem | undefined {
  const h = dev.at(HEADER, 512);
  if (!h) return undefined;
  const le = u32le(h, 0) === 1;
  if (v1 && !le && u32be(h, 0) !== 1) return undefined;
  const lastPage = le ? u32le(h, 4) : u32be(h, 4);
  if (v1 && lastPage === 0) return undefined;
  // libblkid trusts UUID and label only when the padding after them is clean
  const clean = isZero(h.subarray(44 + 128, 44 + 136));
  const label = clean ? byteLabel(h.subarray(28, 44)) : undefined;
  const id = clean ? uuid(h.subarray(12, 28)) : undefined;
  return {
    kind: 'filesystem',
    type,
    ...(label !== undefined ? { label } : {}),
    ...(id ? { uuid: id } : {}),
    ...(v1 && page ? { size: (lastPage + 1) * page, blockSize: page } : {}),
  };
}
