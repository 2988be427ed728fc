/**
 * An rpm header as the package databases store it (rpm's lib/header.cc, the "blob"): no
 * lead and no magic, then
 *
 *   u32 BE il (index entries), u32 BE dl (data bytes),
 *   il entries of 16 bytes: u32 BE tag, type, offset (into the data), count,
 *   dl bytes of data.
 *
 * A v4 header starts with a region entry (HEADERIMMUTABLE, 63): type BIN, count 16, its
 * offset naming a 16-byte trailer in the data whose negated offset is the region's size
 * in index bytes. Entries past the region were added after the package was built
 * ("dribbles": INSTALLTIME, FILESTATES, …); rpm lets a dribble replace a region entry of
 * the same tag, so the last entry of a tag wins here. Everything is checked against the
 * blob before it is read: lengths, counts, offsets, alignment, and each string read ends
 * in a NUL inside the data. A broken header is an EPACKAGEDB error, never a throw of
 * anything else.
 *
 * rpm also checks every entry's data (each string array's NULs, overlaps). That reads the
 * whole blob, ~100 MB on a Fedora system, for tags no one asks for here; only the entries
 * read are checked that far.
 */
import { ApplianceError } from '../../errors.js';
import type { Pieces } from '../pieces.js';

/** The fields of an installed package that an inspection lists. */
export interface RpmPackage {
  name: string;
  /** 0 when the package has none, as rpm's EPOCHNUM (and libguestfs) read it. */
  epoch: number;
  version: string;
  release: string;
  /** '' when the header has none: gpg-pubkey pseudo-packages (rpm prints "(none)"). */
  arch: string;
  summary?: string;
  description?: string;
  url?: string;
  sourceRpm?: string;
  /** Seconds since the epoch (a dribble entry, set when the package was installed). */
  installTime?: number;
}

// The data types (rpm/rpmtag.h rpmTagType_e).
const INT16 = 3;
const INT32 = 4;
const INT64 = 5;
const STRING = 6;
const BIN = 7;
const STRING_ARRAY = 8;
const I18NSTRING = 9;
/** Bytes per element of each type, by type number; -1 for the NUL-terminated string types. */
const TYPE_SIZE = [0, 1, 1, 2, 4, 8, -1, 1, -1, -1];
const isStringType = (type: number): boolean => type === STRING || type === STRING_ARRAY || type === I18NSTRING;

/** The region tags: HEADERIMAGE, HEADERSIGNATURES, HEADERIMMUTABLE. */
const REGION_TAGS = new Set([61, 62, 63]);
/** Tags below this are reserved for regions; rpm refuses them anywhere else. */
const FIRST_DATA_TAG = 100;
const ENTRY_SIZE = 16;

// rpm's own limits (lib/header.cc): 65535 tags, 256 MB of data, a million array elements.
const MAX_ENTRIES = 0xffff;
const MAX_DATA = 0x0fffffff;
const MAX_ARRAY = 0x000fffff;

const TAG = {
  name: 1000,
  version: 1001,
  release: 1002,
  epoch: 1003,
  summary: 1004,
  description: 1005,
  installTime: 1008,
  url: 1020,
  arch: 1022,
  sourceRpm: 1044,
};
const WANTED = new Set(Object.values(TAG));

interface Entry {
  tag: number;
  type: number;
  offset: number;
  count: number;
}

const bad = (what: string) => new ApplianceError('EPACKAGEDB', `rpm header: ${what}`);

/** The header's fields; throws EPACKAGEDB when the blob is not a header or a field read is damaged. */
export function readRpmHeader(blob: Pieces): RpmPackage {
  const { entries, dataStart, dl } = readIndex(blob);
  const data = new HeaderData(blob, dataStart, dl, entries);
  return {
    name: data.requiredString(TAG.name, 'NAME'),
    epoch: data.int32(TAG.epoch, 'EPOCH') ?? 0,
    version: data.requiredString(TAG.version, 'VERSION'),
    release: data.requiredString(TAG.release, 'RELEASE'),
    arch: data.string(TAG.arch, 'ARCH') ?? '',
    summary: data.string(TAG.summary, 'SUMMARY'),
    description: data.string(TAG.description, 'DESCRIPTION'),
    url: data.string(TAG.url, 'URL'),
    sourceRpm: data.string(TAG.sourceRpm, 'SOURCERPM'),
    installTime: data.int32(TAG.installTime, 'INSTALLTIME'),
  };
}

/** The wanted entries by tag (the last of a tag wins), after checking the index and region as rpm does. */
function readIndex(blob: Pieces): { entries: Map<number, Entry>; dataStart: number; dl: number } {
  const head = blob.bytes(0, 8);
  if (!head) throw bad(`${blob.length} bytes, too short for the index and data sizes`);
  const il = head.readUInt32BE(0);
  const dl = head.readUInt32BE(4);
  if (il < 1 || il > MAX_ENTRIES) throw bad(`${il} index entries (1 to ${MAX_ENTRIES} allowed)`);
  if (dl > MAX_DATA) throw bad(`${dl} bytes of data (at most ${MAX_DATA} allowed)`);
  const dataStart = 8 + il * ENTRY_SIZE;
  if (dataStart + dl !== blob.length) throw bad(`8 + 16 * ${il} entries + ${dl} data bytes is not the blob's ${blob.length} bytes`);
  const index = blob.bytes(8, il * ENTRY_SIZE)!;
  const entryAt = (i: number): Entry => ({
    tag: index.readUInt32BE(i * ENTRY_SIZE),
    type: index.readUInt32BE(i * ENTRY_SIZE + 4),
    offset: index.readInt32BE(i * ENTRY_SIZE + 8),
    count: index.readUInt32BE(i * ENTRY_SIZE + 12),
  });
  const first = entryAt(0);
  const hasRegion = REGION_TAGS.has(first.tag);
  if (hasRegion) checkRegion(blob, first, il, dataStart, dl);
  else if (first.tag < FIRST_DATA_TAG) throw bad(`the first entry has the reserved tag ${first.tag} but is not a region`);
  const entries = new Map<number, Entry>();
  // Read in place: an object for each of ~100,000 entries in a database would cost more than the rest.
  for (let i = hasRegion ? 1 : 0, at = i * ENTRY_SIZE; i < il; i++, at += ENTRY_SIZE) {
    const tag = index.readUInt32BE(at);
    checkEntry(tag, index.readUInt32BE(at + 4), index.readInt32BE(at + 8), index.readUInt32BE(at + 12), i, dl);
    if (WANTED.has(tag)) entries.set(tag, entryAt(i));
  }
  return { entries, dataStart, dl };
}

/** The region entry and its trailer, as rpm's hdrblobVerifyRegion checks them. */
function checkRegion(blob: Pieces, region: Entry, il: number, dataStart: number, dl: number): void {
  if (region.type !== BIN || region.count !== ENTRY_SIZE) throw bad(`region tag ${region.tag} has type ${region.type} and count ${region.count}`);
  if (region.offset < 0 || region.offset + ENTRY_SIZE > dl) throw bad(`region trailer at ${region.offset} is outside the ${dl} data bytes`);
  const trailer = blob.bytes(dataStart + region.offset, ENTRY_SIZE)!;
  const tag = trailer.readUInt32BE(0);
  const size = -trailer.readInt32BE(8);
  // Some old packages' signature regions end in a HEADERIMAGE trailer; rpm accepts that.
  const tagOk = tag === region.tag || (region.tag === 62 && tag === 61);
  if (!tagOk || trailer.readUInt32BE(4) !== BIN || trailer.readUInt32BE(12) !== ENTRY_SIZE) throw bad(`region tag ${region.tag} has a damaged trailer`);
  if (size <= 0 || size % ENTRY_SIZE !== 0 || size / ENTRY_SIZE > il) throw bad(`region of ${size} index bytes does not fit ${il} entries`);
}

/** One entry's type, count, offset and alignment, as rpm's hdrblobVerifyInfo checks them (data lengths for read entries only). */
function checkEntry(tag: number, type: number, offset: number, count: number, i: number, dl: number): void {
  const where = () => `entry ${i} (tag ${tag})`;
  if (tag < FIRST_DATA_TAG) throw bad(`${where()} has a reserved tag`);
  if (type < 1 || type >= TYPE_SIZE.length) throw bad(`${where()} has the unknown type ${type}`);
  if (count < 1 || count > dl) throw bad(`${where()} claims ${count} elements in ${dl} data bytes`);
  if (type !== BIN && count > MAX_ARRAY) throw bad(`${where()} claims ${count} elements (at most ${MAX_ARRAY})`);
  if (offset < 0 || offset > dl) throw bad(`${where()} has its data at ${offset}, outside the ${dl} data bytes`);
  const size = TYPE_SIZE[type]!;
  const align = type === INT16 || type === INT32 || type === INT64 ? size : 1;
  if (offset % align !== 0) throw bad(`${where()} has type ${type} at the unaligned offset ${offset}`);
  if (size > 0 && size * count > dl - offset) throw bad(`${where()} has ${size * count} bytes of data past the end`);
}

/** The data store of a checked index: reads one entry's value, checked as it goes. */
class HeaderData {
  constructor(
    private readonly blob: Pieces,
    private readonly start: number,
    private readonly dl: number,
    private readonly entries: Map<number, Entry>,
  ) {}

  /** A string tag's value: its first string for the array types (rpm's choice in the C locale). */
  string(tag: number, name: string): string | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    if (!isStringType(e.type)) throw bad(`${name} has type ${e.type}, not a string`);
    const from = this.start + e.offset;
    const nul = this.blob.indexOf(0, from, this.start + this.dl);
    if (nul < 0) throw bad(`${name} at data offset ${e.offset} has no NUL before the end of the data`);
    return this.blob.bytes(from, nul - from)!.toString('utf8');
  }

  requiredString(tag: number, name: string): string {
    const value = this.string(tag, name);
    if (value === undefined) throw bad(`no ${name}`);
    return value;
  }

  /** An INT32 tag's first value, unsigned (as rpm's headerGetNumber). */
  int32(tag: number, name: string): number | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    if (e.type !== INT32) throw bad(`${name} has type ${e.type}, not INT32`);
    return this.blob.bytes(this.start + e.offset, 4)!.readUInt32BE(0);
  }
}
