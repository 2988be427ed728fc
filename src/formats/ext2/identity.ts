/**
 * The filesystem UUID and directory hash seed: given, or derived from a digest of the
 * tree so the same tree always yields the same image.
 */
import { createHash } from 'node:crypto';
import { ApplianceError } from '../../errors.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parseUuid(text: string): Buffer {
  if (!UUID_RE.test(text)) {
    throw new ApplianceError('EBADUUID', `bad UUID "${text}": use the form 01234567-89ab-cdef-0123-456789abcdef`);
  }
  return Buffer.from(text.replace(/-/g, ''), 'hex');
}

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** A name-based (version 5 layout) UUID from a digest of the tree. */
export function uuidFromDigest(digest: Buffer): Buffer {
  const uuid = Buffer.from(digest.subarray(0, 16));
  uuid[6] = (uuid[6]! & 0x0f) | 0x50;
  uuid[8] = (uuid[8]! & 0x3f) | 0x80;
  return uuid;
}

/** The directory hash seed follows from the UUID, so `--uuid` fixes both. */
export function hashSeedFor(uuid: Buffer): Buffer {
  return createHash('sha256').update('appliance-ext2-hash-seed').update(uuid).digest().subarray(0, 16);
}
