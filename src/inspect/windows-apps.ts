/**
 * Installed applications from the SOFTWARE hive, as libguestfs lists them
 * (lib/inspect-apps.c, list_applications_windows): every subkey of
 * Microsoft\Windows\CurrentVersion\Uninstall, then of the same under WOW6432Node (32-bit
 * programs on 64-bit Windows), that has a string DisplayName; then Microsoft Defender,
 * which has no Uninstall key, when its key is there and not disabled. Sorted by name.
 */
import { foldName, type Hive, type Key, type Value } from '../formats/regf/index.js';
import { guard } from './windows-guard.js';

/** One application with the fields libguestfs's guestfs_application2 has ('' where it has none, as there). */
export interface WindowsApplication {
  /** The Uninstall subkey's name (libguestfs's stand-in for a package name: DisplayName is translated). */
  name: string;
  displayName: string;
  epoch: 0;
  /** DisplayVersion. */
  version: string;
  release: '';
  arch: '';
  /** InstallLocation. */
  installPath: string;
  publisher: string;
  /** URLInfoAbout. */
  url: string;
  sourcePackage: '';
  summary: '';
  /** Comments. */
  description: string;
  /** 'antivirus' when the name, display name or publisher looks like one (libguestfs's only class), else ''. */
  class: string;
}

const UNINSTALL_PATHS = ['\\Microsoft\\Windows\\CurrentVersion\\Uninstall', '\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall'];
const ANTIVIRUS = [/virus/i, /kaspersky/i, /mcafee/i, /norton/i, /sophos/i, /ApexOneNT/i, /avg technologies/i];

const base = { epoch: 0, release: '', arch: '', sourcePackage: '', summary: '' } as const;

/**
 * The applications of a SOFTWARE hive. A key whose values cannot be read (a damaged hive)
 * is left out and its error added to `errors`; libguestfs leaves such an entry out too.
 */
export function windowsApplications(hive: Hive, errors: string[]): WindowsApplication[] {
  const apps: WindowsApplication[] = [];
  for (const path of UNINSTALL_PATHS) {
    const uninstall = guard(errors, `SOFTWARE: ${path}`, () => hive.path(path));
    const children = uninstall && guard(errors, `SOFTWARE: ${path}`, () => hive.subkeys(uninstall));
    for (const child of children ?? []) {
      const app = guard(errors, `SOFTWARE: ${path}\\${child.name}`, () => application(hive, child));
      if (app) apps.push(app);
    }
  }
  const defender = guard(errors, 'SOFTWARE: Microsoft Defender', () => defenderApplication(hive));
  if (defender) apps.push(defender);
  // strcmp order, as libguestfs's qsort (on UTF-8 bytes; equal names keep their order here)
  return apps.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
}

/** hivex_value_string: the text of a string-typed value, else nothing (libguestfs then uses ''). */
const text = (v: Value | undefined): string | undefined => (v?.typed.kind === 'string' ? v.typed.value : undefined);

function application(hive: Hive, key: Key): WindowsApplication | undefined {
  const values = hive.values(key);
  // hivex_node_get_value: the first value of that name, without regard to case
  const get = (name: string) => text(values.find((v) => foldName(v.name) === foldName(name)));
  const displayName = get('DisplayName');
  if (displayName === undefined) return undefined;
  const publisher = get('Publisher') ?? '';
  return {
    ...base,
    name: key.name,
    displayName,
    version: get('DisplayVersion') ?? '',
    installPath: get('InstallLocation') ?? '',
    publisher,
    url: get('URLInfoAbout') ?? '',
    description: get('Comments') ?? '',
    class: [key.name, displayName, publisher].some((f) => ANTIVIRUS.some((re) => re.test(f))) ? 'antivirus' : '',
  };
}

/** Microsoft Defender: listed when SOFTWARE\Microsoft\Windows Defender exists, unless its DisableAntiVirus is 1 (as a little-endian dword of any type). */
function defenderApplication(hive: Hive): WindowsApplication | undefined {
  const key = hive.path('\\Microsoft\\Windows Defender');
  if (!key) return undefined;
  const disable = hive.value(key, 'DisableAntiVirus');
  if (disable && disable.data.length >= 4 && disable.data.readInt32LE(0) === 1) return undefined;
  return {
    ...base,
    name: 'WinDefend',
    displayName: 'Microsoft Defender Antivirus',
    version: '',
    installPath: '',
    publisher: 'Microsoft Corporation',
    url: '',
    description: '',
    class: 'antivirus',
  };
}
