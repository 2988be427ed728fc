// rpm databases made by the real tools (rpmbuild, rpm, sqlite3, db5.3_load), and rpm's
// own answers about them, for the readers in src/formats/{rpm,sqlite,bdb}.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RpmPackage } from '../../src/formats/rpm/index.js';

export const run = (cmd: string, args: string[], input?: string): string =>
  execFileSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });

export interface Spec {
  name: string;
  version: string;
  release?: string;
  epoch?: number;
  noarch?: boolean;
  summary?: string;
  url?: string;
  description?: string;
  /** How many files the package holds (paths carry the name and version, so that versions install side by side). */
  files?: number;
}

function specText(s: Spec): string {
  const dir = `/usr/share/${s.name}-${s.version}`;
  return [
    `Name: ${s.name}`,
    `Version: ${s.version}`,
    `Release: ${s.release ?? '1'}`,
    s.epoch === undefined ? '' : `Epoch: ${s.epoch}`,
    `Summary: ${s.summary ?? `the ${s.name} package`}`,
    'License: MIT',
    s.url ? `URL: ${s.url}` : '',
    s.noarch ? 'BuildArch: noarch' : '',
    '%description',
    s.description ?? `${s.name} for the tests.`,
    '%install',
    `mkdir -p %{buildroot}${dir}`,
    `for i in $(seq 1 ${s.files ?? 1}); do echo $i > %{buildroot}${dir}/a-file-with-a-rather-long-name-$i; done`,
    '%files',
    dir,
  ].join('\n');
}

/** Builds `spec` with rpmbuild for `target` (an arch) in `top`; returns the package's path. */
export function rpmbuild(top: string, spec: Spec, target = 'x86_64'): string {
  mkdirSync(top, { recursive: true });
  const file = join(top, `${spec.name}-${spec.version}.spec`);
  writeFileSync(file, specText(spec) + '\n');
  const out = join(top, `out-${spec.name}-${spec.version}-${target}`);
  run('rpmbuild', ['-bb', '--quiet', '--target', target, '--define', `_topdir ${top}`, '--define', `_rpmdir ${out}`, '--define', '_build_id_links none', file]);
  const arch = spec.noarch ? 'noarch' : target;
  return join(out, arch, readdirSync(join(out, arch))[0]!);
}

/** Installs packages into the database at `dbpath` only (rpm's default backend: sqlite on Debian's rpm 4.18). */
export function installJustDb(dbpath: string, rpms: string[]): void {
  run('rpm', ['-i', '--justdb', '--nodeps', '--noscripts', '--ignorearch', '--ignoreos', '--dbpath', dbpath, ...rpms]);
}

/**
 * The packages the rpm tests install into `dbpath` (work files go to `dir`): epochs (2,
 * an explicit 0, none), one name for two arches, noarch, one name in three versions, a
 * header large enough for overflow chains (~40 KB), a package erased again (free pages),
 * and a gpg-pubkey pseudo-package (no arch) from a key imported with rpm --import.
 */
export function installFixture(dir: string, dbpath: string): void {
  const top = join(dir, 'build');
  const alpha: Spec = { name: 'alpha', version: '1.2', release: '3', epoch: 2, url: 'https://alpha.example.org/' };
  const rpms = [
    rpmbuild(top, alpha, 'x86_64'),
    rpmbuild(top, alpha, 'i686'),
    rpmbuild(top, { name: 'beta', version: '0.9', noarch: true, summary: 'Zürich ☃ beta', description: 'Line one.\nLine two: ünïcode.' }),
    rpmbuild(top, { name: 'gamma', version: '1.0', epoch: 0 }, 'aarch64'),
    rpmbuild(top, { name: 'kern', version: '5.9', release: '2.fc40' }),
    rpmbuild(top, { name: 'kern', version: '5.10', release: '1.fc40' }),
    rpmbuild(top, { name: 'kern', version: '5.10~rc7', release: '1.fc40' }),
    rpmbuild(top, { name: 'many-files', version: '3', files: 300 }),
    rpmbuild(top, { name: 'erased', version: '1' }),
  ];
  installJustDb(dbpath, rpms);
  run('rpm', ['-e', '--justdb', '--nodeps', '--noscripts', '--dbpath', dbpath, 'erased']);
  const gnupg = join(dir, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  const gpg = ['--homedir', gnupg, '--batch', '--pinentry-mode', 'loopback', '--passphrase', ''];
  run('gpg', [...gpg, '--quick-gen-key', 'Test Key <test@example.org>', 'rsa2048', 'sign', 'never']);
  writeFileSync(join(dir, 'key.asc'), run('gpg', [...gpg, '--armor', '--export', 'test@example.org']));
  run('rpm', ['--dbpath', dbpath, '--import', join(dir, 'key.asc')]);
}

const FIELDS = ['NAME', 'EPOCHNUM', 'VERSION', 'RELEASE', 'ARCH', 'SUMMARY', 'URL', 'SOURCERPM', 'INSTALLTIME', 'DESCRIPTION'];
/** What the query prints for an absent tag, where rpm would print "(none)" (which a tag can also hold: gpg-pubkey's SOURCERPM does). */
const ABSENT = '\x1d';

/** What `rpm -qa` says the database at `dbpath` holds, as RpmPackages: an absent ARCH is '', other absent tags no field. */
export function rpmQueryAll(dbpath: string, backend?: string): RpmPackage[] {
  const format = FIELDS.map((f) => `%|${f}?{%{${f}}}:{${ABSENT}}|`).join('\x1f') + '\x1e';
  const args = ['-qa', '--dbpath', dbpath, '--qf', format, ...(backend ? ['--define', `_db_backend ${backend}`] : [])];
  return run('rpm', args)
    .split('\x1e')
    .slice(0, -1)
    .map((line) => {
      const [name, epoch, version, release, arch, summary, url, sourceRpm, installTime, description] = line
        .split('\x1f')
        .map((v) => (v === ABSENT ? undefined : v));
      const p: RpmPackage = { name: name!, epoch: Number(epoch ?? 0), version: version!, release: release!, arch: arch ?? '' };
      const extra = { summary, description, url, sourceRpm };
      for (const [k, v] of Object.entries(extra)) if (v !== undefined) (p as unknown as Record<string, string>)[k] = v;
      if (installTime !== undefined) p.installTime = Number(installTime);
      return p;
    });
}

/** A package list in one canonical order, with what rpm -qa cannot show the same way left out, for comparing. */
export const canonical = (list: RpmPackage[]): RpmPackage[] =>
  list
    .map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as RpmPackage)
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

export interface HeaderBlob {
  key: number;
  blob: Buffer;
}

/** The header blobs of an rpm sqlite database, as sqlite3 itself reads them. */
export function sqliteBlobs(file: string): HeaderBlob[] {
  return run('sqlite3', ['-readonly', file, 'SELECT hnum, hex(blob) FROM Packages ORDER BY hnum'])
    .trim()
    .split('\n')
    .map((line) => {
      const [key, hex] = line.split('|');
      return { key: Number(key), blob: Buffer.from(hex!, 'hex') };
    });
}

/**
 * A Berkeley DB hash file made by db5.3_load from `records`, laid out as rpm's bdb backend
 * kept Packages: 4-byte record numbers in the file's byte order as keys, and record 0
 * holding the next record number.
 */
export function bdbLoad(file: string, records: HeaderBlob[], opts: { bigEndian?: boolean; pageSize?: number } = {}): void {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    if (opts.bigEndian) b.writeUInt32BE(n);
    else b.writeUInt32LE(n);
    return b.toString('hex');
  };
  const next = Math.max(0, ...records.map((r) => r.key)) + 1;
  const dump = [
    'VERSION=3',
    'format=bytevalue',
    'type=hash',
    `db_pagesize=${opts.pageSize ?? 4096}`,
    `db_lorder=${opts.bigEndian ? 4321 : 1234}`,
    'HEADER=END',
    ` ${u32(0)}`,
    ` ${u32(next)}`,
    ...records.flatMap((r) => [` ${u32(r.key)}`, ` ${r.blob.toString('hex')}`]),
    'DATA=END',
  ].join('\n');
  run('db5.3_load', [file], dump + '\n');
}

/** adler32 (RFC 1950), as rpm's ndb checksums a blob. */
function adler32(b: Buffer): number {
  let s1 = 1;
  let s2 = 0;
  for (const byte of b) {
    s1 = (s1 + byte) % 65521;
    s2 = (s2 + s1) % 65521;
  }
  return (s2 * 65536 + s1) >>> 0;
}

/**
 * An ndb Packages.db holding `records`, written by the rules of rpm's lib/backend/ndb/
 * rpmpkg.c (Debian's rpm is built without ndb, so no real tool here can write one): a
 * 32-byte header, slot pages of 16-byte slots, then each blob in 16-byte blocks with its
 * head, zero padding and tail (adler32 over head, blob and padding).
 */
export function ndbFile(records: HeaderBlob[]): Buffer {
  const slotPages = Math.ceil((records.length + 2) / 256);
  const parts: Buffer[] = [];
  const slots = Buffer.alloc(slotPages * 4096);
  for (let at = 0; at < slots.length; at += 16) slots.write('Slot', at, 'latin1');
  slots.write('RpmP', 0, 'latin1');
  slots.writeUInt32LE(0, 4);
  slots.writeUInt32LE(1, 8);
  slots.writeUInt32LE(slotPages, 12);
  slots.writeUInt32LE(Math.max(0, ...records.map((r) => r.key)) + 1, 16);
  slots.fill(0, 20, 32);
  let block = slotPages * 256;
  records.forEach((r, i) => {
    const blocks = Math.ceil((16 + r.blob.length + 12) / 16);
    const blob = Buffer.alloc(blocks * 16);
    blob.write('BlbS', 0, 'latin1');
    blob.writeUInt32LE(r.key, 4);
    blob.writeUInt32LE(1, 8);
    blob.writeUInt32LE(r.blob.length, 12);
    r.blob.copy(blob, 16);
    blob.writeUInt32LE(adler32(blob.subarray(0, blob.length - 12)), blob.length - 12);
    blob.writeUInt32LE(r.blob.length, blob.length - 8);
    blob.write('BlbE', blob.length - 4, 'latin1');
    const slot = 32 + i * 16;
    slots.writeUInt32LE(r.key, slot + 4);
    slots.writeUInt32LE(block, slot + 8);
    slots.writeUInt32LE(blocks, slot + 12);
    parts.push(blob);
    block += blocks;
  });
  return Buffer.concat([slots, ...parts]);
}

/**
 * The database folder `from` as another process would find it while a sqlite3 session
 * holds its database open mid-way: `statements` committed but not checkpointed (the WAL
 * keeps them), copied to `to` before the session closes (closing checkpoints the WAL).
 */
export async function copyWithOpenWal(from: string, to: string, statements: string[]): Promise<void> {
  const session = spawn('sqlite3', [join(from, 'rpmdb.sqlite')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => session.on('exit', resolve));
  let out = '';
  const done = new Promise<void>((resolve) =>
    session.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('committed\n')) resolve();
    }),
  );
  session.stdin.write(['PRAGMA wal_autocheckpoint = 0;', ...statements, '.print committed', ''].join('\n'));
  await done;
  mkdirSync(to, { recursive: true });
  for (const f of ['rpmdb.sqlite', 'rpmdb.sqlite-wal']) copyFileSync(join(from, f), join(to, f));
  session.stdin.end();
  await exited;
}

/**
 * `count` packages from one rpmbuild run (subpackages big0000…, each with `files` files
 * and a 400-entry changelog, ~60 KB of header each: a Fedora-sized database). Payloads
 * are left uncompressed and dependency generation off, which rpmbuild otherwise spends
 * most of its time on.
 */
export async function rpmbuildMany(top: string, count: number, files: number): Promise<string[]> {
  const id = (i: number) => String(i).padStart(4, '0');
  const lines = ['Name: big', 'Version: 1', 'Release: 1', 'Summary: big', 'License: MIT', 'BuildArch: noarch', 'AutoReqProv: no', '%description', 'big'];
  for (let i = 0; i < count; i++) {
    lines.push(
      `%package -n big${id(i)}`,
      `Summary: big package ${i}`,
      `Version: 1.${i}`,
      'AutoReqProv: no',
      `%description -n big${id(i)}`,
      `Big package ${i}.`,
    );
    lines.push(`%files -n big${id(i)}`, `/usr/share/big/${id(i)}`);
  }
  lines.push(
    '%install',
    `cd %{buildroot} && for i in $(seq 0 ${count - 1}); do d=$(printf %04d $i); mkdir -p usr/share/big/$d; for j in $(seq 1 ${files}); do echo $d$j > usr/share/big/$d/file-with-a-longish-name-$j.txt; done; done`,
  );
  lines.push('%changelog');
  for (let k = 0; k < 400; k++)
    lines.push(
      `* Mon Jan 01 2024 Packager Person <packager@example.org> - 1.${k}-1`,
      `- change ${k}: fixed a thing in the module that handles things, see issue #${k * 7}`,
    );
  mkdirSync(top, { recursive: true });
  const spec = join(top, 'big.spec');
  writeFileSync(spec, lines.join('\n') + '\n');
  const out = join(top, 'rpms');
  const quick = ['_binary_payload w.ufdio', '_build_id_links none', '__spec_install_post %{nil}', '__os_install_post %{nil}'];
  // Minutes of work: run without blocking the test worker, whose runner expects an answer meanwhile.
  await promisify(execFile)(
    'rpmbuild',
    ['-bb', '--quiet', '--define', `_topdir ${top}`, '--define', `_rpmdir ${out}`, ...quick.flatMap((d) => ['--define', d]), spec],
    {
      maxBuffer: 1 << 30,
    },
  );
  return readdirSync(join(out, 'noarch')).map((f) => join(out, 'noarch', f));
}
