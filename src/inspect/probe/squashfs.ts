/**
 * The squashfs superblock at offset 0: "hsqs" with version 4 or later is squashfs (its
 * size is bytes_used); older ones, or the big-endian "sqsh", are blkid's "squashfs3",
 * which Linux no longer mounts. No label, no UUID.
 */
import { ascii, u16be, u16le, u32le, u64le } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

export function probeSquashfs(dev: DeviceBytes): Filesystem | undefined {
  const sb = dev.at(0, 96);
  if (!sb) return undefined;
  const magic = ascii(sb.subarray(0, 4));
  if (magic === 'hsqs' && u16le(sb, 28) >= 4) {
    const size = u64le(sb, 40);
    const blockSize = u32le(sb, 12);
    return {
      kind: 'filesystem',
      type: 'squashfs',
      ...(Number.isSafeInteger(size) ? { size } : {}),
      ...(blockSize ? { blockSize } : {}),
    };
  }
  const major = magic === 'sqsh' ? u16be(sb, 28) : magic === 'hsqs' ? u16le(sb, 28) : 99;
  return major <= 3 ? { kind: 'filesystem', type: 'squashfs3', blockSize: 1024 } : undefined;
}
