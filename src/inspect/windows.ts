/**
 * What a Windows installation is, from its registry hives and cmd.exe, computed as
 * libguestfs does (daemon/inspect_fs_windows.ml, lib/inspect-apps.c, lib/inspect-osinfo.c)
 * so the result reads as virt-inspector's. Pure: the caller finds the system root and
 * reads the files (windows-root.ts says which and how); nothing here touches a VM.
 *
 * A damaged or hostile hive never throws out of windowsFacts: each fact that cannot be
 * read is left out and says why in `errors`, and the others stay. Where libguestfs would
 * fail the whole inspection on a value of the wrong type, only that fact is missing here.
 */
import { ApplianceError } from '../errors.js';
import { readPeHeader } from '../formats/pe.js';
import { Hive, type Value } from '../formats/regf/index.js';
import { windowsApplications, type WindowsApplication } from './windows-apps.js';
import { driveMappings, type DriveMapping } from './windows-drives.js';
import { guard } from './windows-guard.js';
import { windowsOsinfo } from './windows-osinfo.js';
import { WINDOWS_READ_LIMITS } from './windows-root.js';

export type { DriveMapping } from './windows-drives.js';
export type { WindowsApplication } from './windows-apps.js';

export interface WindowsInput {
  /** The system root as found on the filesystem, in its case there (libguestfs's windows_systemroot: "/Windows"). */
  systemRoot: string;
  /** <systemroot>/system32/config/software, whole; undefined when it is not a regular file. */
  software?: Buffer;
  /** <systemroot>/system32/config/system, whole; undefined when it is not a regular file. */
  system?: Buffer;
  /** The first bytes of <systemroot>/system32/cmd.exe (WINDOWS_READ_LIMITS.cmdExe are enough). */
  cmdExe?: Buffer;
}

export interface WindowsFacts {
  type: 'windows';
  distro: 'windows';
  systemRoot: string;
  /** From cmd.exe, as libguestfs (through file(1)): PE32 is "i386", PE32+ "x86_64" (an ARM64 build too). */
  arch?: string;
  /** ProductName ("Windows Server 2019 Standard"). */
  productName?: string;
  /** InstallationType: "Client", "Server", "Server Core"… */
  productVariant?: string;
  /** EditionID ("ServerStandard", "Professional"): not in virt-inspector's output. */
  edition?: string;
  /** CurrentMajorVersionNumber and CurrentMinorVersionNumber when both are there, else CurrentVersion ("6.1"); 0 where unknown. */
  version: { major: number; minor: number };
  /** CurrentBuildNumber ("17763"). */
  buildId?: string;
  /** "ControlSet001": HKLM\SYSTEM\Select\Current. */
  currentControlSet?: string;
  /** <current control set>\Services\Tcpip\Parameters\Hostname. */
  hostname?: string;
  /** Whether group policy objects were applied (a {GUID} subkey of …\Group Policy\History). */
  groupPolicy?: boolean;
  /** From HKLM\SYSTEM\MountedDevices, in stored order. */
  driveMappings: DriveMapping[];
  applications: WindowsApplication[];
  /** libosinfo's short id (win7, win2k19, win11…): "unknown" when nothing fits; undefined when a Windows 10/11 client's build is unreadable. */
  osinfo?: string;
}

/** Facts, and why any that should be there are not (each message names the hive, the fact and the cause). */
export interface WindowsResult {
  facts: WindowsFacts;
  errors: string[];
}

export function windowsFacts(input: WindowsInput): WindowsResult {
  const errors: string[] = [];
  const facts: WindowsFacts = {
    type: 'windows',
    distro: 'windows',
    systemRoot: input.systemRoot,
    version: { major: 0, minor: 0 },
    driveMappings: [],
    applications: [],
  };
  facts.arch = archOf(input.cmdExe, errors);
  const software = openHive('SOFTWARE', input.software, errors);
  const system = openHive('SYSTEM', input.system, errors);
  // libguestfs reads the registry's facts only when both hives are there, the applications whenever SOFTWARE is
  if (software && system) {
    guard(errors, 'SOFTWARE', () => readSoftware(software, facts, errors));
    readSystem(system, facts, errors);
  } else if (software || system)
    errors.push(`the ${software ? 'SYSTEM' : 'SOFTWARE'} hive is missing or unreadable: as libguestfs, the registry's other facts are not read`);
  if (software) facts.applications = windowsApplications(software, errors);
  facts.osinfo = windowsOsinfo(facts);
  return { facts, errors };
}

function archOf(cmdExe: Buffer | undefined, errors: string[]): string | undefined {
  const pe = cmdExe && readPeHeader(cmdExe);
  if (!pe) errors.push(cmdExe ? 'cmd.exe is not a PE executable: no architecture' : 'cmd.exe was not read: no architecture');
  return pe ? (pe.format === 'PE32' ? 'i386' : 'x86_64') : undefined;
}

function openHive(name: string, bytes: Buffer | undefined, errors: string[]): Hive | undefined {
  if (!bytes) return undefined;
  if (bytes.length > WINDOWS_READ_LIMITS.hive) {
    errors.push(`${name}: the hive is ${bytes.length} bytes, more than the ${WINDOWS_READ_LIMITS.hive} read`);
    return undefined;
  }
  return guard(errors, name, () => new Hive(bytes));
}

/** A value's text when it is a string type; a value of another type is an error (hivex_value_string fails on it). */
function stringOf(v: Value): string {
  if (v.typed.kind !== 'string') throw new ApplianceError('EHIVE', `value "${v.name}" is of type ${v.type}, not a string`);
  return v.typed.value;
}

/** A dword as libguestfs takes it (hivex_value_dword, then Int32): signed. */
function dwordOf(v: Value): number {
  if (v.typed.kind !== 'number') throw new ApplianceError('EHIVE', `value "${v.name}" is of type ${v.type} (${v.data.length} bytes), not a dword`);
  return v.typed.value | 0;
}

const MAJOR_MINOR = /(\d+)\.(\d+)/;
const MAJOR = /(\d+)/;

/** libguestfs's parse_version_from_major_minor: the first "N.M" anywhere in the text, else the first "N" (minor 0). */
function parseVersion(text: string): { major: number; minor: number } | undefined {
  const m = MAJOR_MINOR.exec(text) ?? MAJOR.exec(text);
  if (!m) return undefined;
  const version = { major: Number(m[1]), minor: m[2] === undefined ? 0 : Number(m[2]) };
  return Number.isSafeInteger(version.major) && Number.isSafeInteger(version.minor) ? version : undefined;
}

/**
 * HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion, whose values libguestfs looks up by
 * exact name (the first of that name). As there, a key without a version stops the
 * reading: no variant, build or group policy then.
 */
function readSoftware(hive: Hive, facts: WindowsFacts, errors: string[]): void {
  const key = hive.path('\\Microsoft\\Windows NT\\CurrentVersion');
  if (!key) return;
  const values = hive.values(key);
  const named = (name: string) => values.find((v) => v.name === name);
  const read = <T>(name: string, as: (v: Value) => T): T | undefined => {
    const v = named(name);
    return v && guard(errors, `SOFTWARE: CurrentVersion\\${name}`, () => as(v));
  };
  facts.productName = read('ProductName', stringOf);
  const major = named('CurrentMajorVersionNumber');
  const minor = named('CurrentMinorVersionNumber');
  if (major && minor) {
    const both = guard(errors, 'SOFTWARE: CurrentVersion', () => ({ major: dwordOf(major), minor: dwordOf(minor) }));
    if (both) facts.version = both;
  } else {
    const text = named('CurrentVersion');
    if (!text) return;
    const version = guard(errors, 'SOFTWARE: CurrentVersion', () => parseVersion(stringOf(text)));
    if (version) facts.version = version;
  }
  facts.productVariant = read('InstallationType', stringOf);
  facts.buildId = read('CurrentBuildNumber', stringOf);
  facts.edition = read('EditionID', stringOf);
  facts.groupPolicy = guard(errors, 'SOFTWARE: Group Policy', () => groupPolicy(hive));
}

/** Any subkey of …\Group Policy\History named like "{GUID}" (libguestfs checks the braces and the first hex digit). */
function groupPolicy(hive: Hive): boolean {
  const history = hive.path('\\Microsoft\\Windows\\CurrentVersion\\Group Policy\\History');
  if (!history) return false;
  return hive.subkeys(history).some((k) => k.name.length > 3 && k.name.startsWith('{') && /[0-9A-Fa-f]/.test(k.name[1]!) && k.name.endsWith('}'));
}

/** C's "%03ld": at least three characters, zero-padded after the sign. */
const pad3 = (n: number) => (n < 0 ? `-${String(-n).padStart(2, '0')}` : String(n).padStart(3, '0'));

function readSystem(hive: Hive, facts: WindowsFacts, errors: string[]): void {
  facts.driveMappings = guard(errors, 'SYSTEM: MountedDevices', () => driveMappings(hive)) ?? [];
  const select = guard(errors, 'SYSTEM: Select', () => hive.path('\\Select'));
  const current = select && guard(errors, 'SYSTEM: Select\\Current', () => hive.value(select, 'Current'));
  if (!current) return;
  const set = guard(errors, 'SYSTEM: Select\\Current', () => `ControlSet${pad3(dwordOf(current))}`);
  if (!set) return;
  facts.currentControlSet = set;
  facts.hostname = guard(errors, `SYSTEM: ${set}\\Services\\Tcpip\\Parameters`, () => {
    const key = hive.path(`\\${set}\\Services\\Tcpip\\Parameters`);
    const value = key && hive.values(key).find((v) => v.name === 'Hostname');
    return value && stringOf(value);
  });
}
