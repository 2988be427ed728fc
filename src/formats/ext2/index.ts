/**
 * The ext2 image writer: a plan step lays out the whole image from the entries'
 * metadata, a write step streams the content into a sparse temporary file that is
 * renamed into place once complete.
 */
import { ApplianceError } from '../../errors.js';
import { replaceAtomically } from '../../files.js';
import type { Entry } from '../entry.js';
import type { BlockSize } from './constants.js';
import { parseUuid } from './identity.js';
import { ImageFile } from './image-file.js';
import { planImage } from './plan.js';
import { writeImage } from './write.js';

export interface Ext2Options {
  /** Image size in bytes; by default the smallest that fits plus `extraBytes`. */
  size?: number;
  /** Free space added to an automatically sized image (default 4 MiB). */
  extraBytes?: number;
  blockSize?: 1024 | 2048 | 4096;
  /** Filesystem UUID; by default derived from the tree. */
  uuid?: string;
  /** Volume label, up to 16 bytes. */
  label?: string;
  /** Own everything by root (uid 0, gid 0). */
  squashOwner?: boolean;
  /** Clamp every time to this (seconds); defaults to $SOURCE_DATE_EPOCH when set. */
  sourceDateEpoch?: number;
  onProgress?: (p: { files: number; bytes: number }) => void;
}

export interface Ext2Result {
  path: string;
  sizeBytes: number;
  blockSize: number;
  blocksTotal: number;
  blocksFree: number;
  inodesTotal: number;
  inodesFree: number;
  uuid: string;
}

export const DEFAULT_EXTRA_BYTES = 4 * 1024 * 1024;

/** Writes `entries` (any order; missing parent directories are added) as an ext2 image at `output`. */
export async function writeExt2(entries: Entry[], output: string, opts: Ext2Options = {}): Promise<Ext2Result> {
  const blockSize = (opts.blockSize ?? 4096) as BlockSize;
  const label = Buffer.from(opts.label ?? '', 'utf8');
  if (label.length > 16) throw new ApplianceError('EBADOPTION', `label "${opts.label}" is ${label.length} bytes: ext2 labels hold at most 16`);
  const uuid = opts.uuid === undefined ? undefined : parseUuid(opts.uuid);
  const extraBytes = opts.extraBytes ?? DEFAULT_EXTRA_BYTES;
  if (!Number.isSafeInteger(extraBytes) || extraBytes < 0) throw new ApplianceError('EBADOPTION', `extra space ${extraBytes} is not a byte count`);
  if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size <= 0)) {
    throw new ApplianceError('EBADOPTION', `image size ${opts.size} is not a byte count`);
  }
  const clampTime = opts.sourceDateEpoch ?? sourceDateEpochFromEnv();
  const plan = planImage(entries, { blockSize, size: opts.size, extraBytes, squashOwner: opts.squashOwner ?? false, clampTime });

  const summary = await replaceAtomically(output, async (temp) => {
    const image = ImageFile.create(temp, plan.imageBytes);
    try {
      // Without SOURCE_DATE_EPOCH the superblock times stay 0: any clock reading would make images differ.
      return await writeImage(plan, image, { uuid, label, time: clampTime ?? 0, onProgress: opts.onProgress });
    } finally {
      image.close();
    }
  });
  const g = plan.geometry;
  return {
    path: output,
    sizeBytes: plan.imageBytes,
    blockSize: g.blockSize,
    blocksTotal: g.blocksCount,
    blocksFree: summary.blocksFree,
    inodesTotal: g.inodesCount,
    inodesFree: summary.inodesFree,
    uuid: summary.uuid,
  };
}

function sourceDateEpochFromEnv(): number | undefined {
  const text = process.env.SOURCE_DATE_EPOCH;
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text)) throw new ApplianceError('EBADOPTION', `SOURCE_DATE_EPOCH="${text}" is not a number of seconds`);
  return Number(text);
}
