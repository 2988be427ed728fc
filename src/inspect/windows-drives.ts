/**
 * Drive letters from HKLM\SYSTEM\MountedDevices, as libguestfs reads them: each
 * `\DosDevices\X:` value whose data is REG_BINARY names either an MBR partition (12 bytes:
 * the disk signature and the partition's byte offset) or a GPT partition ("DMIO:ID:" and
 * the partition's unique GUID). Other values (volume GUIDs, other data) are not mappings.
 */
import { REG, type Hive, type Value } from '../formats/regf/index.js';
import { guid } from './probe/bytes.js';

/**
 * A drive letter and the partition behind it, to match against the disks' partition
 * tables: for `mbr`, the table of type 'dos' whose `id` is `diskSignature` and its
 * partition whose `start` is `offset`; for `gpt`, the partition whose `uuid` is
 * `partitionGuid` in a table of type 'gpt'. libguestfs drops a letter that matches no
 * partition, and virt-inspector prints them sorted by letter.
 */
export type DriveMapping =
  | {
      letter: string;
      kind: 'mbr';
      /** As PartitionTable.id for MBR: the signature at 0x1B8, 8 hex digits. */ diskSignature: string;
      /** Bytes from the start of the disk. */ offset: number;
    }
  | { letter: string; kind: 'gpt'; /** Lower case, as PartitionEntry.uuid. */ partitionGuid: string };

const GPT_PREFIX = 'DMIO:ID:';
const PREFIX = '\\dosdevices\\';
const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** The mappings of the SYSTEM hive, in the order of its values (undefined when it has no MountedDevices key). */
export function driveMappings(hive: Hive): DriveMapping[] | undefined {
  const node = hive.path('\\MountedDevices');
  if (!node) return undefined;
  return hive.values(node).flatMap((v) => {
    const mapping = mappingOf(v);
    return mapping ? [mapping] : [];
  });
}

function mappingOf(v: Value): DriveMapping | undefined {
  // "\DosDevices\C:" in any case, the letter an ASCII one; libguestfs ignores anything after the colon
  const letter = v.name[PREFIX.length];
  if (v.name.length < PREFIX.length + 2 || asciiLower(v.name.slice(0, PREFIX.length)) !== PREFIX) return undefined;
  if (!letter || !/^[A-Za-z]$/.test(letter) || v.name[PREFIX.length + 1] !== ':' || v.type !== REG.BINARY) return undefined;
  const blob = v.data;
  if (blob.length >= 24 && blob.toString('latin1', 0, GPT_PREFIX.length) === GPT_PREFIX) {
    return { letter, kind: 'gpt', partitionGuid: guid(blob.subarray(8, 24)) };
  }
  if (blob.length !== 12) return undefined;
  const offset = Number(blob.readBigUInt64LE(4));
  if (!Number.isSafeInteger(offset)) return undefined;
  return { letter, kind: 'mbr', diskSignature: blob.readUInt32LE(0).toString(16).padStart(8, '0'), offset };
}
