// Windows facts from registry hives and cmd.exe, as libguestfs computes them. The hives
// are made in the test by hivexregedit from .reg data of our own: a pretend Windows 7
// (modelled on libguestfs's phony guest: its keys, a few Uninstall entries, MountedDevices
// with an MBR and a GPT entry), a Windows Server 2019 (version dwords, a second control
// set, 64- and 32-bit applications, a non-ASCII name, an antivirus, group policy) and a
// Windows 11 (a client told apart by its build, Microsoft Defender). cmd.exe is a PE
// header written here, checked against file(1), whose words libguestfs takes the
// architecture from; the osinfo ids against the osinfo database. Then once, under a VM:
// both installations on NTFS filesystems of a disk image, beside a GPT disk, and
// virt-inspector's report of them against windowsFacts of the same files.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPeHeader } from '../src/formats/pe.js';
import { REG } from '../src/formats/regf/index.js';
import { windowsFacts, type WindowsFacts, type WindowsResult } from '../src/inspect/windows.js';
import { windowsOsinfo } from '../src/inspect/windows-osinfo.js';
import { bootIniSystemRoots, windowsPaths } from '../src/inspect/windows-root.js';
import { GUESTFS_ENV } from './helpers/guestfs.js';
import { CURRENT_VERSION, makeHive, REG_BINARY, REG_DWORD, REG_SZ, SERVER2019_VERSION, type RegKeySpec, type RegValueSpec } from './helpers/hives.js';
import { run } from './helpers/images.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const MiB = 1024 * 1024;

// ---- the disks the drive mappings name ------------------------------------------------

/** The MBR disk: its signature (as the bytes at 0x1B8) and two NTFS partitions, one per Windows. */
const MBR_SIGNATURE = Buffer.from([0x31, 0x32, 0x33, 0x34]);
const P1 = { start: 1 * MiB, size: 40 * MiB };
const P2 = { start: 41 * MiB, size: 40 * MiB };
/** The GPT disk's partitions' unique GUIDs (as sfdisk takes them). */
const GPT1 = '6a4b2f1c-93d2-4e7a-b1c3-0f9e8d7c6b5a';
const GPT2 = 'c0ffee00-1234-4abc-9def-00112233aabb';

/** A MountedDevices blob for an MBR partition: the disk signature and the partition's byte offset. */
const mbrBlob = (offset: number) => Buffer.concat([MBR_SIGNATURE, Buffer.from(BigUint64Array.of(BigInt(offset)).buffer)]);
/** A MountedDevices blob for a GPT partition: "DMIO:ID:" and the GUID as Windows stores it (first three fields little-endian). */
function gptBlob(guid: string): Buffer {
  const h = guid.replaceAll('-', '');
  const swap = (s: string) => Buffer.from(s, 'hex').reverse();
  return Buffer.concat([Buffer.from('DMIO:ID:'), swap(h.slice(0, 8)), swap(h.slice(8, 12)), swap(h.slice(12, 16)), Buffer.from(h.slice(16), 'hex')]);
}

// ---- the hives ------------------------------------------------------------------------

const UNINSTALL = ['Microsoft', 'Windows', 'CurrentVersion', 'Uninstall'];
const WOW_UNINSTALL = ['Wow6432Node', ...UNINSTALL];
const app = (path: string[], name: string, values: RegValueSpec[]): RegKeySpec => ({ path: [...path, name], values });
const tcpip = (set: string, hostname: string): RegKeySpec => ({
  path: [set, 'Services', 'Tcpip', 'Parameters'],
  values: [REG_SZ('Hostname', hostname), REG_SZ('Domain', '')],
});

const PRETEND7_SOFTWARE: RegKeySpec[] = [
  {
    path: CURRENT_VERSION,
    values: [
      REG_SZ('ProductName', 'Microsoft Windows 7 Pretend Edition'),
      REG_SZ('CurrentVersion', '6.1'),
      REG_SZ('InstallationType', 'Client'),
      REG_SZ('CurrentBuildNumber', '7601'),
      REG_SZ('EditionID', 'Ultimate'),
    ],
  },
  app(UNINSTALL, 'alpha', [
    REG_SZ('DisplayName', 'Alpha is not real software'),
    REG_SZ('URLInfoAbout', 'https://alpha.invalid/'),
    REG_SZ('DisplayVersion', '1.2.3'),
    REG_DWORD('VersionMajor', 1),
  ]),
  app(UNINSTALL, 'beta', [
    REG_SZ('DisplayName', 'Beta is not real software'),
    REG_SZ('DisplayVersion', '2.0'),
    REG_SZ('Comments', 'A longer description of beta'),
  ]),
  app(UNINSTALL, 'gamma', [
    REG_SZ('DisplayName', 'Gamma is not real software'),
    REG_SZ('DisplayVersion', '3.1'),
    REG_SZ('Publisher', 'Example Corp.'),
    REG_SZ('InstallLocation', 'C:\\Program Files\\Example\\gamma'),
  ]),
  app(UNINSTALL, '{5A3C6E2B-0D4F-4B8A-9C1E-7F2D3A4B5C6D}', [REG_SZ('DisplayName', 'Delta, an MSI product'), REG_SZ('DisplayVersion', '4.0.1')]),
  app(UNINSTALL, 'KB2534111', [REG_SZ('ParentDisplayName', 'an update without a DisplayName: not an application')]),
  app(UNINSTALL, 'numbered', [REG_DWORD('DisplayName', 7)]),
  app(UNINSTALL, 'expanded', [{ name: 'displayname', type: REG.EXPAND_SZ, data: Buffer.from('Expanded %name%\0', 'utf16le') }]),
  app(WOW_UNINSTALL, 'epsilon', [
    REG_SZ('DisplayName', 'Epsilon, 32-bit'),
    REG_SZ('Publisher', 'Example Corp.'),
    REG_SZ('Comments', 'WOW6432Node holds the 32-bit programs of a 64-bit Windows'),
  ]),
];

const PRETEND7_SYSTEM: RegKeySpec[] = [
  { path: ['Select'], values: [REG_DWORD('Current', 1), REG_DWORD('Default', 1), REG_DWORD('Failed', 0), REG_DWORD('LastKnownGood', 2)] },
  {
    path: ['MountedDevices'],
    values: [
      REG_BINARY('\\DosDevices\\C:', mbrBlob(P1.start)),
      REG_BINARY('\\DosDevices\\D:', gptBlob(GPT1)),
      REG_BINARY('\\DosDevices\\E:', mbrBlob(12_345 * 512)),
      REG_BINARY('\\??\\Volume{0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0}', mbrBlob(P1.start)),
      REG_SZ('\\DosDevices\\F:', 'not binary'),
      REG_BINARY('\\DosDevices\\G:', Buffer.alloc(16, 1)),
    ],
  },
  tcpip('ControlSet001', 'pretend7.invalid'),
];

const SERVER2019_SOFTWARE: RegKeySpec[] = [
  SERVER2019_VERSION,
  app(UNINSTALL, '7-Zip', [
    REG_SZ('DisplayName', '7-Zip 19.00 (x64)'),
    REG_SZ('DisplayVersion', '19.00'),
    REG_SZ('Publisher', 'Igor Pavlov'),
    REG_SZ('InstallLocation', 'C:\\Program Files\\7-Zip\\'),
    REG_SZ('URLInfoAbout', 'https://www.7-zip.org/'),
  ]),
  app(UNINSTALL, 'Git_is1', [
    REG_SZ('DisplayName', 'Git'),
    REG_SZ('DisplayVersion', '2.41.0'),
    REG_SZ('Publisher', 'The Git Development Community'),
    REG_SZ('InstallLocation', 'C:\\Program Files\\Git\\'),
  ]),
  app(UNINSTALL, 'Sophos Endpoint Agent', [
    REG_SZ('DisplayName', 'Sophos Endpoint Agent'),
    REG_SZ('Publisher', 'Sophos Limited'),
    REG_SZ('DisplayVersion', '2023.1.0'),
  ]),
  app(UNINSTALL, 'Über', [REG_SZ('DisplayName', 'Über Tool ☃ 漢字'), REG_SZ('Publisher', 'Ünïcode GmbH'), REG_SZ('DisplayVersion', '1.0')]),
  app(UNINSTALL, '{90160000-008C-0000-1000-0000000FF1CE}', [
    REG_SZ('DisplayName', 'Office 16 Click-to-Run Extensibility Component'),
    REG_SZ('Publisher', 'Microsoft Corporation'),
    REG_SZ('DisplayVersion', '16.0.4266.1001'),
  ]),
  app(WOW_UNINSTALL, 'Notepad++', [REG_SZ('DisplayName', 'Notepad++ (32-bit x86)'), REG_SZ('DisplayVersion', '8.5.4'), REG_SZ('Publisher', 'Notepad++ Team')]),
  app(WOW_UNINSTALL, '{26A24AE4-039D-4CA4-87B4-2F32180351F0}', [
    REG_SZ('DisplayName', 'Java 8 Update 351'),
    REG_SZ('DisplayVersion', '8.0.3510.10'),
    REG_SZ('Publisher', 'Oracle Corporation'),
    REG_SZ('InstallLocation', 'C:\\Program Files (x86)\\Java\\jre1.8.0_351\\'),
  ]),
  {
    path: ['Microsoft', 'Windows', 'CurrentVersion', 'Group Policy', 'History', '{35378EAC-683F-11D2-A89A-00C04FBBCFA2}', '0'],
    values: [REG_SZ('DisplayName', 'Local Group Policy')],
  },
];

const SERVER2019_SYSTEM: RegKeySpec[] = [
  { path: ['Select'], values: [REG_DWORD('Current', 2), REG_DWORD('Default', 2), REG_DWORD('LastKnownGood', 1)] },
  {
    path: ['MountedDevices'],
    values: [
      REG_BINARY('\\??\\Volume{5d1b3a2c-0000-0000-0000-100000000000}', gptBlob(GPT2)),
      REG_BINARY('\\DosDevices\\C:', mbrBlob(P2.start)),
      REG_BINARY('\\DosDevices\\F:', gptBlob(GPT2)),
      REG_BINARY('\\DosDevices\\Z:', gptBlob('00000000-1111-2222-3333-444444444444')),
    ],
  },
  tcpip('ControlSet001', 'OLD-NAME'),
  tcpip('ControlSet002', 'WIN-SRV2019'),
];

/** A Windows 11 client: its registry still says 10.0 (and "Windows 10 Pro"), only the build tells. With Microsoft Defender's key. */
const WINDOWS11_SOFTWARE = (defender: RegValueSpec[] | undefined): RegKeySpec[] => [
  {
    path: CURRENT_VERSION,
    values: [
      REG_SZ('ProductName', 'Windows 10 Pro'),
      REG_DWORD('CurrentMajorVersionNumber', 10),
      REG_DWORD('CurrentMinorVersionNumber', 0),
      REG_SZ('CurrentVersion', '6.3'),
      REG_SZ('CurrentBuildNumber', '22621'),
      REG_SZ('InstallationType', 'Client'),
      REG_SZ('EditionID', 'Professional'),
    ],
  },
  ...(defender ? [{ path: ['Microsoft', 'Windows Defender'], values: defender }] : []),
  app(UNINSTALL, 'Norton', [REG_SZ('DisplayName', 'Security Suite'), REG_SZ('Publisher', 'Gen Digital')]),
];
const WINDOWS11_SYSTEM: RegKeySpec[] = [{ path: ['Select'], values: [REG_DWORD('Current', 1)] }, tcpip('ControlSet001', 'DESKTOP-11')];

// ---- cmd.exe ----------------------------------------------------------------------------

/** The headers of a PE image: an MS-DOS stub pointing at "PE\0\0", a COFF header for `machine`, an optional header of `magic`. */
function peImage(machine: number, magic: number): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt16LE(0x40, 0x18);
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(machine, 0x84);
  b.writeUInt16LE(1, 0x86); // sections
  b.writeUInt16LE(magic === 0x20b ? 0xf0 : 0xe0, 0x94); // optional header size
  b.writeUInt16LE(0x0102, 0x96); // executable, 32-bit words
  b.writeUInt16LE(magic, 0x98);
  b.writeUInt16LE(3, 0x98 + 68); // subsystem: console
  return b;
}
const CMD_I386 = peImage(0x14c, 0x10b);
const CMD_X64 = peImage(0x8664, 0x20b);

let dir: string;
const hives: Record<string, Buffer> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-windows-'));
  const make = async (name: string, keys: RegKeySpec[]) => (hives[name] = await readFile(await makeHive(dir, name, keys)));
  await make('pretend7-software', PRETEND7_SOFTWARE);
  await make('pretend7-system', PRETEND7_SYSTEM);
  await make('server2019-software', SERVER2019_SOFTWARE);
  await make('server2019-system', SERVER2019_SYSTEM);
  await make('windows11-software', WINDOWS11_SOFTWARE([REG_DWORD('DisableAntiVirus', 0)]));
  await make('windows11-disabled-software', WINDOWS11_SOFTWARE([REG_DWORD('DisableAntiVirus', 1)]));
  await make('windows11-system', WINDOWS11_SYSTEM);
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const facts = (name: string, cmdExe = CMD_X64, systemRoot = '/Windows'): WindowsResult =>
  windowsFacts({ systemRoot, software: hives[`${name}-software`], system: hives[`${name.replace(/-disabled$/, '')}-system`], cmdExe });

describe('windowsFacts', () => {
  it('reads a pretend Windows 7 as libguestfs does: CurrentVersion text, control set, hostname, drive letters, applications', () => {
    const { facts: f, errors } = facts('pretend7', CMD_I386);
    expect(errors).toEqual([]);
    expect(f).toMatchObject({
      type: 'windows',
      distro: 'windows',
      systemRoot: '/Windows',
      arch: 'i386',
      productName: 'Microsoft Windows 7 Pretend Edition',
      productVariant: 'Client',
      edition: 'Ultimate',
      version: { major: 6, minor: 1 },
      buildId: '7601',
      currentControlSet: 'ControlSet001',
      hostname: 'pretend7.invalid',
      groupPolicy: false,
    });
    // \??\Volume…, a REG_SZ and a 16-byte blob are no drive letters; E: names no partition, which only matching can tell
    expect(f.driveMappings).toEqual([
      { letter: 'C', kind: 'mbr', diskSignature: MBR_SIGNATURE.readUInt32LE(0).toString(16).padStart(8, '0'), offset: P1.start },
      { letter: 'D', kind: 'gpt', partitionGuid: GPT1 },
      { letter: 'E', kind: 'mbr', diskSignature: '34333231', offset: 12_345 * 512 },
    ]);
    // no DisplayName, or one that is not a string: not listed; sorted by key name (strcmp)
    expect(f.applications.map((a) => [a.name, a.displayName, a.version, a.publisher, a.installPath, a.url, a.description])).toEqual([
      ['alpha', 'Alpha is not real software', '1.2.3', '', '', 'https://alpha.invalid/', ''],
      ['beta', 'Beta is not real software', '2.0', '', '', '', 'A longer description of beta'],
      ['epsilon', 'Epsilon, 32-bit', '', 'Example Corp.', '', '', 'WOW6432Node holds the 32-bit programs of a 64-bit Windows'],
      ['expanded', 'Expanded %name%', '', '', '', '', ''],
      ['gamma', 'Gamma is not real software', '3.1', 'Example Corp.', 'C:\\Program Files\\Example\\gamma', '', ''],
      ['{5A3C6E2B-0D4F-4B8A-9C1E-7F2D3A4B5C6D}', 'Delta, an MSI product', '4.0.1', '', '', '', ''],
    ]);
    expect(f.applications.every((a) => a.epoch === 0 && a.release === '' && a.arch === '' && a.class === '')).toBe(true);
  });

  it('reads a Windows Server 2019: version dwords over CurrentVersion, the second control set, 32-bit programs, an antivirus, group policy', () => {
    const { facts: f, errors } = facts('server2019');
    expect(errors).toEqual([]);
    expect(f).toMatchObject({
      arch: 'x86_64',
      productName: 'Windows Server 2019 Standard',
      productVariant: 'Server',
      edition: 'ServerStandard',
      version: { major: 10, minor: 0 },
      buildId: '17763',
      currentControlSet: 'ControlSet002',
      hostname: 'WIN-SRV2019',
      groupPolicy: true,
    });
    expect(f.driveMappings.map((m) => m.letter)).toEqual(['C', 'F', 'Z']);
    const byName = new Map(f.applications.map((a) => [a.name, a]));
    expect([...byName.keys()]).toEqual([
      '7-Zip',
      'Git_is1',
      'Notepad++',
      'Sophos Endpoint Agent',
      '{26A24AE4-039D-4CA4-87B4-2F32180351F0}',
      '{90160000-008C-0000-1000-0000000FF1CE}',
      'Über',
    ]);
    expect(byName.get('Über')).toMatchObject({ displayName: 'Über Tool ☃ 漢字', publisher: 'Ünïcode GmbH' });
    expect(byName.get('Sophos Endpoint Agent')!.class).toBe('antivirus');
    expect(byName.get('7-Zip')!.class).toBe('');
  });

  it('tells a Windows 11 by its build, and lists Microsoft Defender unless it is disabled', () => {
    const on = facts('windows11').facts;
    const off = facts('windows11-disabled').facts;
    expect(on.osinfo).toBe('win11');
    expect(on.applications.map((a) => [a.name, a.displayName, a.publisher, a.class])).toEqual([
      ['Norton', 'Security Suite', 'Gen Digital', 'antivirus'],
      ['WinDefend', 'Microsoft Defender Antivirus', 'Microsoft Corporation', 'antivirus'],
    ]);
    expect(off.applications.map((a) => a.name)).toEqual(['Norton']);
  });

  it('keeps the other facts when one value has the wrong type, and says which', async () => {
    const keys = PRETEND7_SOFTWARE.map((k) =>
      k.path === CURRENT_VERSION ? { ...k, values: k.values!.map((v) => (v.name === 'ProductName' ? REG_DWORD('ProductName', 7) : v)) } : k,
    );
    const software = await readFile(await makeHive(dir, 'typo-software', keys));
    const { facts: f, errors } = windowsFacts({ systemRoot: '/Windows', software, system: hives['pretend7-system'], cmdExe: CMD_I386 });
    expect(f.productName).toBeUndefined();
    expect(f).toMatchObject({ version: { major: 6, minor: 1 }, productVariant: 'Client', hostname: 'pretend7.invalid' });
    expect(errors).toEqual([expect.stringMatching(/^SOFTWARE: CurrentVersion\\ProductName: .*ProductName.* type 4, not a string/)]);
  });

  it('without the SYSTEM hive reads no registry facts but the applications, as libguestfs; without cmd.exe no architecture', () => {
    const { facts: f, errors } = windowsFacts({ systemRoot: '/WINNT', software: hives['pretend7-software'] });
    expect(f.productName).toBeUndefined();
    expect(f.hostname).toBeUndefined();
    expect(f.applications).toHaveLength(6);
    expect(f.arch).toBeUndefined();
    expect(errors).toEqual([
      'cmd.exe was not read: no architecture',
      "the SYSTEM hive is missing or unreadable: as libguestfs, the registry's other facts are not read",
    ]);
  });

  it('says what is wrong with a file that is no hive, and goes on', () => {
    const { facts: f, errors } = windowsFacts({
      systemRoot: '/Windows',
      software: Buffer.from('not a hive'),
      system: hives['pretend7-system'],
      cmdExe: Buffer.from('MZ'),
    });
    expect(f.arch).toBeUndefined();
    expect(errors).toEqual([
      'cmd.exe is not a PE executable: no architecture',
      expect.stringMatching(/^SOFTWARE: registry hive: the file is 10 bytes/),
      expect.any(String),
    ]);
  });
});

describe('what libguestfs takes the architecture from', () => {
  it.each([
    ['i386', 0x14c, 0x10b],
    ['AMD64', 0x8664, 0x20b],
    ['ARM64', 0xaa64, 0x20b],
    ['ARMNT', 0x1c4, 0x10b],
    ['IA-64', 0x200, 0x20b],
  ])('a %s PE image reads as file(1) describes it', async (_, machine, magic) => {
    const image = peImage(machine, magic);
    const path = join(dir, `cmd-${machine}.exe`);
    await writeFile(path, image);
    const described = (await run('file', ['-b', path], { env: { LANG: 'C' } })).stdout;
    const pe = readPeHeader(image)!;
    expect(pe.machine).toBe(machine);
    // libguestfs's Filearch: "PE32 executable" is i386, "PE32+ executable" x86_64, whatever the machine
    const theirs = described.includes('PE32 executable') ? 'i386' : described.includes('PE32+ executable') ? 'x86_64' : undefined;
    expect(windowsFacts({ systemRoot: '/Windows', cmdExe: image }).facts.arch).toBe(theirs);
  });

  it('finds no PE image where file(1) finds none', async () => {
    for (const bytes of [Buffer.from('MZ'), Buffer.concat([Buffer.from('MZ'), Buffer.alloc(100)]), CMD_X64.subarray(0, 0x90), Buffer.alloc(512)]) {
      const path = join(dir, 'not-pe.exe');
      await writeFile(path, bytes);
      expect((await run('file', ['-b', path])).stdout).not.toMatch(/PE32/);
      expect(readPeHeader(bytes)).toBeUndefined();
    }
  });
});

describe('osinfo ids, against the osinfo database', () => {
  /** Every Microsoft OS the installed osinfo-db knows: short id → version and name. */
  const osinfoDb = new Map<string, { version: string; name: string }>();
  beforeAll(() => {
    const folder = '/usr/share/osinfo/os/microsoft.com';
    for (const file of readdirSync(folder).filter((f) => f.endsWith('.xml'))) {
      const xml = readFileSync(join(folder, file), 'utf8');
      const field = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];
      for (const id of xml.matchAll(/<short-id>([^<]*)<\/short-id>/g)) osinfoDb.set(id[1]!, { version: field('version')!, name: field('name')! });
    }
  });

  const cases: [string, Partial<WindowsFacts> & { version: { major: number; minor: number } }][] = [
    ['XP', { version: { major: 5, minor: 1 }, productName: 'Microsoft Windows XP' }],
    ['XP x64', { version: { major: 5, minor: 2 }, productName: 'Microsoft Windows XP Professional x64 Edition' }],
    ['Server 2003', { version: { major: 5, minor: 2 }, productName: 'Microsoft Windows Server 2003', productVariant: 'Server' }],
    ['Server 2003 R2', { version: { major: 5, minor: 2 }, productName: 'Microsoft Windows Server 2003 R2', productVariant: 'Server' }],
    ['Vista', { version: { major: 6, minor: 0 }, productVariant: 'Client' }],
    ['Server 2008', { version: { major: 6, minor: 0 }, productVariant: 'Server' }],
    ['7', { version: { major: 6, minor: 1 }, productVariant: 'Client' }],
    ['Server 2008 R2', { version: { major: 6, minor: 1 }, productVariant: 'Server Core' }],
    ['8', { version: { major: 6, minor: 2 }, productVariant: 'Client' }],
    ['Server 2012', { version: { major: 6, minor: 2 }, productVariant: 'Server' }],
    ['8.1', { version: { major: 6, minor: 3 }, productVariant: 'Client' }],
    ['Server 2012 R2', { version: { major: 6, minor: 3 }, productVariant: 'Server' }],
    ['10', { version: { major: 10, minor: 0 }, productVariant: 'Client', buildId: '19045' }],
    ['Server 2016', { version: { major: 10, minor: 0 }, productVariant: 'Server', productName: 'Windows Server 2016 Datacenter' }],
    ['Server 2019', { version: { major: 10, minor: 0 }, productVariant: 'Server', productName: 'Windows Server 2019 Standard' }],
    ['Server 2022', { version: { major: 10, minor: 0 }, productVariant: 'Server', productName: 'Windows Server 2022 Datacenter' }],
  ];

  it.each(cases)('Windows %s: an id the database has, for that version, a server exactly when the variant says so', (label, f) => {
    const id = windowsOsinfo(f)!;
    const known = osinfoDb.get(id);
    expect(known, id).toBeDefined();
    // where the database's version is not the registry's: XP x64 is 5.2 but shares XP's id (5.1), and osinfo-db lists Server 2012 (6.2) as 6.3
    const version = `${f.version.major}.${f.version.minor}`;
    expect(known!.version).toBe(({ 'winxp 5.2': '5.1', 'win2k12 6.2': '6.3' } as Record<string, string>)[`${id} ${version}`] ?? version);
    expect(known!.name.includes('Server')).toBe(label.startsWith('Server'));
    for (const word of ['R2', '2016', '2019', '2022', 'XP']) if (label.includes(word)) expect(known!.name).toContain(word);
  });

  it('Windows 11 is 10.0 with a build from 22000; an unreadable build gives no id, an unknown version "unknown"', () => {
    const eleven = windowsOsinfo({ version: { major: 10, minor: 0 }, productVariant: 'Client', buildId: '22000' })!;
    expect(osinfoDb.get(eleven)?.name).toMatch(/Windows 11/);
    expect(windowsOsinfo({ version: { major: 10, minor: 0 }, productVariant: 'Client', buildId: '21999' })).toBe(windowsOsinfo(cases[12]![1]));
    expect(windowsOsinfo({ version: { major: 10, minor: 0 }, buildId: '22000a' })).toBeUndefined();
    expect(windowsOsinfo({ version: { major: 10, minor: 0 } })).toBeUndefined();
    expect(windowsOsinfo({ version: { major: 4, minor: 0 } })).toBe('unknown');
  });

  it('the fixtures get the ids of their versions', () => {
    expect(facts('pretend7').facts.osinfo).toBe(windowsOsinfo(cases[6]![1]));
    expect(facts('server2019').facts.osinfo).toBe(windowsOsinfo(cases[14]![1]));
  });
});

describe('finding the system root', () => {
  it("reads boot.ini's [operating systems] lines as libguestfs does", () => {
    const ini = [
      '[boot loader]',
      'timeout=30',
      'default=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS',
      '[operating systems]',
      'multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS="Microsoft Windows XP Professional" /noexecute=optin /fastdetect\r',
      'scsi(0)disk(1)rdisk(0)partition(2)\\WINNT\\SYS="Windows 2000"\r',
      'multi(0)disk(0)rdisk(0)partition(3)no-backslash',
      'C:\\CMDCONS\\BOOTSECT.DAT="Recovery Console" /cmdcons',
      'multi(0)disk(0)rdisk(0)partition(4)\\AFTER="after a line that ends the list"',
    ].join('\n');
    expect(bootIniSystemRoots(ini)).toEqual(['/WINDOWS', '/WINNT/SYS']);
    expect(bootIniSystemRoots('no such section')).toEqual([]);
    expect(windowsPaths('/Windows')).toEqual({
      system32: '/Windows/system32',
      config: '/Windows/system32/config',
      cmdExe: '/Windows/system32/cmd.exe',
      software: '/Windows/system32/config/software',
      system: '/Windows/system32/config/system',
    });
  });
});

// ---- libguestfs itself ------------------------------------------------------------------

interface InspectorOs {
  fields: Record<string, string>;
  driveMappings: [string, string][];
  applications: Record<string, string>[];
}

const unescapeXml = (s: string) => s.replace(/&(lt|gt|amp|quot|apos);/g, (_, e: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[e]!);
const elements = (xml: string) => Object.fromEntries([...xml.matchAll(/<(\w+)>([^<]*)<\/\1>/g)].map((m) => [m[1]!, unescapeXml(m[2]!)]));

/** virt-inspector's XML: each operating system's scalar fields, drive mappings and applications. */
function parseInspector(xml: string): InspectorOs[] {
  return [...xml.matchAll(/<operatingsystem>([\s\S]*?)<\/operatingsystem>/g)].map(([, os]) => ({
    fields: elements(os!.split('<mountpoints>')[0]!),
    driveMappings: [...os!.matchAll(/<drive_mapping name="([^"]*)">([^<]*)<\/drive_mapping>/g)].map((m) => [m[1]!, m[2]!]),
    applications: [...os!.matchAll(/<application>([\s\S]*?)<\/application>/g)].map((m) => elements(m[1]!)),
  }));
}

/** An NTFS of `size` bytes made by mkntfs, filled through the host's ntfs-3g by `fill`. */
async function ntfs(path: string, size: number, label: string, fill: (mnt: string) => Promise<void>): Promise<void> {
  await writeFile(path, Buffer.alloc(0));
  await truncate(path, size);
  await run('mkntfs', ['-F', '-Q', '-q', '-L', label, path]);
  const mnt = await mkdtemp(join(tmpdir(), 'appliance-windows-mnt-'));
  await run('ntfs-3g', ['-o', 'rw', path, mnt]);
  try {
    await fill(mnt);
  } finally {
    await run('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  }
}

/** A Windows installation: the hives and cmd.exe where libguestfs looks for them, in the case `root` and `config` give. */
function installation(root: string, config: string, name: string, cmdExe: Buffer) {
  return async (mnt: string) => {
    const folder = join(mnt, root, config);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'SOFTWARE'), hives[`${name}-software`]!);
    await writeFile(join(folder, 'SYSTEM'), hives[`${name}-system`]!);
    await writeFile(join(folder, '..', 'cmd.exe'), cmdExe);
    await mkdir(join(mnt, 'Program Files'));
  };
}

describe('against virt-inspector (libguestfs), one launch', () => {
  let theirs: InspectorOs[];
  let disks: { mbr: string; gpt: string };

  beforeAll(async () => {
    disks = { mbr: join(dir, 'windows.img'), gpt: join(dir, 'data.img') };
    await writeFile(disks.mbr, Buffer.alloc(0));
    await truncate(disks.mbr, 96 * MiB);
    const sector = (n: number) => n / 512;
    const layout = `label: dos\nlabel-id: 0x${MBR_SIGNATURE.readUInt32LE(0).toString(16)}\n${[P1, P2].map((p) => `start=${sector(p.start)}, size=${sector(p.size)}, type=7`).join('\n')}\n`;
    await run('sfdisk', ['-q', disks.mbr], { input: layout });
    for (const [i, p, fill] of [
      [1, P1, installation('Windows', 'System32/Config', 'pretend7', CMD_I386)],
      [2, P2, installation('WINDOWS', 'system32/config', 'server2019', CMD_X64)],
    ] as const) {
      const part = join(dir, `part${i}.ntfs`);
      await ntfs(part, p.size, `windows${i}`, fill);
      await run('dd', [`if=${part}`, `of=${disks.mbr}`, 'bs=1M', `seek=${p.start / MiB}`, 'conv=notrunc,sparse', 'status=none']);
    }
    await writeFile(disks.gpt, Buffer.alloc(0));
    await truncate(disks.gpt, 8 * MiB);
    await run('sfdisk', ['-q', disks.gpt], { input: `label: gpt\nstart=2048, size=2048, uuid=${GPT1}\nstart=4096, size=2048, uuid=${GPT2}\n` });
    const { stdout } = await run('virt-inspector', ['--format=raw', '-a', disks.mbr, '--format=raw', '-a', disks.gpt], { env: GUESTFS_ENV });
    theirs = parseInspector(stdout);
  }, 300_000);

  /** Our facts for the OS on partition `n` of the MBR disk, in virt-inspector's words, its drive letters resolved against the two disks as libguestfs does. */
  function ours(name: string, systemRoot: string, cmdExe: Buffer): InspectorOs {
    const { facts: f, errors } = windowsFacts({ systemRoot, software: hives[`${name}-software`], system: hives[`${name}-system`], cmdExe });
    expect(errors).toEqual([]);
    const signature = MBR_SIGNATURE.readUInt32LE(0).toString(16).padStart(8, '0');
    const device = (m: WindowsFacts['driveMappings'][number]) =>
      m.kind === 'mbr'
        ? m.diskSignature === signature &&
          [P1, P2].findIndex((p) => p.start === m.offset) >= 0 &&
          `/dev/sda${[P1, P2].findIndex((p) => p.start === m.offset) + 1}`
        : [GPT1, GPT2].includes(m.partitionGuid) && `/dev/sdb${[GPT1, GPT2].indexOf(m.partitionGuid) + 1}`;
    const fields: Record<string, string | undefined> = {
      name: f.type,
      arch: f.arch,
      distro: f.distro,
      product_name: f.productName,
      product_variant: f.productVariant,
      major_version: String(f.version.major),
      minor_version: String(f.version.minor),
      windows_systemroot: f.systemRoot,
      windows_current_control_set: f.currentControlSet,
      hostname: f.hostname,
      osinfo: f.osinfo,
    };
    const app = (a: WindowsFacts['applications'][number]) => ({
      name: a.name,
      display_name: a.displayName,
      version: a.version,
      install_path: a.installPath,
      publisher: a.publisher,
      url: a.url,
      description: a.description,
    });
    return {
      fields: Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Record<string, string>,
      driveMappings: f.driveMappings.flatMap((m): [string, string][] => (device(m) ? [[m.letter, device(m) as string]] : [])).sort(),
      // virt-inspector prints only the fields that are not empty
      applications: f.applications.map((a) => Object.fromEntries(Object.entries(app(a)).filter(([, v]) => v !== ''))),
    };
  }

  it('finds the same two Windows installations, with the same facts, drive letters and applications', () => {
    expect(theirs.map((os) => os.fields.root)).toEqual(['/dev/sda1', '/dev/sda2']);
    const pick = (os: InspectorOs): InspectorOs => ({
      ...os,
      fields: Object.fromEntries(Object.entries(os.fields).filter(([k]) => k !== 'root' && k !== 'build_id' && k !== 'windows_group_policy')),
    });
    expect(pick(theirs[0]!)).toEqual(ours('pretend7', '/Windows', CMD_I386));
    expect(pick(theirs[1]!)).toEqual(ours('server2019', '/WINDOWS', CMD_X64));
  });

  it('appliance inspect --xml on the same disks: the same roots, facts, drive letters and applications as virt-inspector', () => {
    const r = spawnSync(process.execPath, [resolve('dist/src/bin.cjs'), 'inspect', '--xml', disks.mbr, disks.gpt, '--cache-dir', SHARED_CACHE], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    // Known difference: the virt-inspector here (guestfs-tools 1.48) predates <build_id> and
    // an application's <class>, which newer ones print (virt-inspector.rng has both).
    const older = (os: InspectorOs): InspectorOs => ({
      ...os,
      fields: Object.fromEntries(Object.entries(os.fields).filter(([k]) => k !== 'build_id')),
      applications: os.applications.map((a) => Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'class'))),
    });
    expect(parseInspector(r.stdout).map(older)).toEqual(theirs);
  });
});
