/**
 * SQLite's table b-trees (sqlite.org/fileformat.html §1.6): interior pages (type 5) hold
 * child page numbers and keys, leaf pages (type 13) hold rows: a payload size, the rowid,
 * the payload's first bytes and, when it does not fit, the first page of a chain of
 * overflow pages (a next-page number, then the payload's next bytes).
 *
 * The walk is iterative, visits each page at most once (SqlitePages.claim: a loop or a
 * page with two parents is an error, not a second visit), goes no deeper than SQLite
 * itself can, and checks every offset and count against the page before reading it. A
 * damaged page loses its own rows, reported as errors; the walk goes on with the rest.
 */
import { Pieces, recordError, type StoredRecord } from '../pieces.js';
import { bad, HEADER_SIZE } from './header.js';
import type { PageRef, SqlitePages } from './pages.js';
import { varint } from './record.js';

const INTERIOR_TABLE = 5;
const LEAF_TABLE = 13;
/** SQLite's own limit on a b-tree's depth (BTCURSOR_MAX_DEPTH). */
const MAX_DEPTH = 20;

/** Every row of the table whose b-tree starts at page `root`, in rowid order: key = rowid, value = the record. */
export function* tableRows(pages: SqlitePages, root: number): Generator<StoredRecord> {
  const stack: { page: number; depth: number }[] = [{ page: root, depth: 1 }];
  while (stack.length > 0) {
    const { page, depth } = stack.pop()!;
    let node: Node;
    try {
      if (depth > MAX_DEPTH) throw bad(`the b-tree at page ${root} is deeper than ${MAX_DEPTH} pages`);
      node = readNode(pages, page);
    } catch (error) {
      yield { error: recordError(error) };
      continue;
    }
    if (node.children) {
      // Pushed last to first, so the leftmost child comes off the stack first.
      for (let i = node.children.length - 1; i >= 0; i--) stack.push({ page: node.children[i]!, depth: depth + 1 });
    } else {
      for (const cell of node.cells) yield leafRow(pages, node.page, cell);
    }
  }
}

interface Node {
  page: PageRef;
  /** Interior pages: the child page numbers, left to right (the right-most pointer last). */
  children?: number[];
  /** Leaf pages: where each cell starts, from the page's start. */
  cells: number[];
}

/** A b-tree page's header and cell pointers, all checked to lie inside its usable bytes. */
function readNode(pages: SqlitePages, n: number): Node {
  const page = pages.claim(n, 'a table b-tree page');
  const { buf, at } = page;
  const usable = pages.header.usableSize;
  const head = n === 1 ? HEADER_SIZE : 0;
  const type = buf[at + head]!;
  if (type !== INTERIOR_TABLE && type !== LEAF_TABLE) throw bad(`page ${n} has the type ${type}, not a table b-tree page`);
  const interior = type === INTERIOR_TABLE;
  const pointers = head + (interior ? 12 : 8);
  const count = buf.readUInt16BE(at + head + 3);
  const contentStart = pointers + 2 * count;
  if (contentStart > usable) throw bad(`page ${n} claims ${count} cells, more than its ${usable} bytes can point to`);
  const cells: number[] = [];
  for (let i = 0; i < count; i++) {
    const cell = buf.readUInt16BE(at + pointers + 2 * i);
    if (cell < contentStart || cell >= usable) throw bad(`page ${n}'s cell ${i} is at ${cell}, outside its content area`);
    cells.push(cell);
  }
  if (!interior) return { page, cells };
  const children = cells.map((cell, i) => {
    if (cell + 4 > usable) throw bad(`page ${n}'s cell ${i} is cut by the end of the page`);
    return buf.readUInt32BE(at + cell);
  });
  children.push(buf.readUInt32BE(at + head + 8));
  return { page, cells, children };
}

/** One leaf cell: its rowid and whole payload (local bytes, then the overflow chain's). */
function leafRow(pages: SqlitePages, { buf, at }: PageRef, cell: number): StoredRecord {
  const usable = pages.header.usableSize;
  const local = buf.subarray(at, at + usable);
  const size = varint(local, cell);
  const rowid = size && varint(local, size.next);
  if (!size || !rowid) return { error: bad('a leaf cell is cut by the end of its page') };
  const key = rowid.value;
  try {
    const here = localSize(size.value, usable);
    if (rowid.next + here > usable) throw bad(`row ${key}'s ${here} local bytes run past the end of its page`);
    const payload = Pieces.of(buf, at + rowid.next, here);
    if (here < size.value) {
      if (rowid.next + here + 4 > usable) throw bad(`row ${key}'s overflow page number is cut by the end of its page`);
      overflow(pages, local.readUInt32BE(rowid.next + here), size.value - here, key, payload);
    }
    return { key, value: payload };
  } catch (error) {
    return { key, error: recordError(error) };
  }
}

/** How many of a payload's bytes a table leaf keeps on its own page (the rest overflow). */
function localSize(payload: number, usable: number): number {
  const max = usable - 35;
  if (payload <= max) return payload;
  const min = Math.floor(((usable - 12) * 32) / 255) - 23;
  const k = min + ((payload - min) % (usable - 4));
  return k <= max ? k : min;
}

/** Appends `remaining` bytes from the overflow chain starting at page `first` to `payload`. */
function overflow(pages: SqlitePages, first: number, remaining: number, key: number, payload: Pieces): void {
  const each = pages.header.usableSize - 4;
  if (Math.ceil(remaining / each) > pages.count) throw bad(`row ${key} claims ${remaining} bytes of overflow, more than the database holds`);
  let next = first;
  while (remaining > 0) {
    const { buf, at } = pages.claim(next, 'the overflow chain', key);
    const take = Math.min(each, remaining);
    payload.push(buf, at + 4, take);
    remaining -= take;
    next = buf.readUInt32BE(at);
  }
}
