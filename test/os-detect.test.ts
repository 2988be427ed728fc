// OS detection over release files as real distributions write them, each case checked
// against the rule of libguestfs it follows (daemon/inspect_fs_unix.ml unless said:
// linux_root_tests is the ordered list of release files; parse_generic, parse_os_release,
// parse_lsb_release and parse_suse_release the parsers; inspect_fs.ml check_filesystem
// the roles and check_package_format/_management the package system; inspect.ml the
// passes over the list; lib/inspect-osinfo.c the osinfo ids). virt-inspector itself is
// the oracle of inspect-xml.test.ts, on images holding some of these same roots.
import { describe, expect, it } from 'vitest';
import { deploymentsOf, detectSystems, isOstreeSysroot } from '../src/inspect/os.js';
import { canonicalDeviceName, libguestfsDevice } from '../src/inspect/os/device-names.js';
import { osinfoId } from '../src/inspect/os/osinfo.js';
import { detectOne, elfHeader, matcher, treeFiles, X86_64, type Tree } from './helpers/os-files.js';

/** A Linux root's skeleton: /etc by its fstab, /bin by a program (inspect_fs.ml: is_dir /etc, is_dir /bin, is_file /etc/fstab). */
const linux = (files: Tree): Tree => ({ '/etc/fstab': '/dev/sda1 / ext4 defaults 0 1\n', '/bin/ls': X86_64, ...files });

const osRelease = (fields: Record<string, string>) =>
  Object.entries(fields)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n') + '\n';

describe('Red Hat family: redhat-release and the rebuilds’ own files (linux_root_tests)', () => {
  it('Fedora 14: redhat-release by re_fedora; yum, as check_package_management says before Fedora 22', () => {
    const os = detectOne(linux({ '/etc/redhat-release': 'Fedora release 14 (Laughlin)\n', '/etc/fedora-release': 'Fedora release 14 (Laughlin)\n' }));
    expect(os).toMatchObject({ type: 'linux', distro: 'fedora', productName: 'Fedora release 14 (Laughlin)', version: { major: 14, minor: 0 } });
    expect(os).toMatchObject({ packageFormat: 'rpm', packageManagement: 'yum', osinfo: 'fedora14', arch: 'x86_64' });
  });

  it('Fedora 39 by os-release; dnf where /usr/bin/dnf is a file, yum where it is not (check_package_management)', () => {
    const release = osRelease({ NAME: '"Fedora Linux"', VERSION_ID: '39', ID: 'fedora', PRETTY_NAME: '"Fedora Linux 39 (Workstation Edition)"' });
    const withDnf = detectOne(linux({ '/etc/os-release': release, '/usr/bin/dnf': 'x' }));
    expect(withDnf).toMatchObject({
      distro: 'fedora',
      productName: 'Fedora Linux 39 (Workstation Edition)',
      version: { major: 39, minor: 0 },
      osinfo: 'fedora39',
    });
    expect(withDnf!.packageManagement).toBe('dnf');
    expect(detectOne(linux({ '/etc/os-release': release }))!.packageManagement).toBe('yum');
  });

  it('RHEL 6.2 by re_rhel; RHEL 4 "Update 9" by re_rhel_old (and up2date before 5); RHEL 9.4 by os-release (dnf from 8)', () => {
    const six = detectOne(linux({ '/etc/redhat-release': 'Red Hat Enterprise Linux Server release 6.2 (Santiago)\n' }));
    expect(six).toMatchObject({ distro: 'rhel', version: { major: 6, minor: 2 }, packageManagement: 'yum', osinfo: 'rhel6.2' });
    const four = detectOne(linux({ '/etc/redhat-release': 'Red Hat Enterprise Linux AS release 4 (Nahant Update 9)\n' }));
    expect(four).toMatchObject({ distro: 'rhel', version: { major: 4, minor: 9 }, packageManagement: 'up2date', osinfo: 'rhel4.9' });
    const nine = detectOne(
      linux({ '/etc/os-release': osRelease({ ID: '"rhel"', VERSION_ID: '"9.4"', PRETTY_NAME: '"Red Hat Enterprise Linux 9.4 (Plow)"' }) }),
    );
    expect(nine).toMatchObject({ distro: 'rhel', version: { major: 9, minor: 4 }, packageManagement: 'dnf', osinfo: 'rhel9.4' });
  });

  it('CentOS 7: os-release has no minor (parse_os_release bails out), centos-release gives 7.9; osinfo centos7.0', () => {
    const os = detectOne(
      linux({
        '/etc/os-release': osRelease({
          NAME: '"CentOS Linux"',
          VERSION: '"7 (Core)"',
          ID: '"centos"',
          VERSION_ID: '"7"',
          PRETTY_NAME: '"CentOS Linux 7 (Core)"',
        }),
        '/etc/centos-release': 'CentOS Linux release 7.9.2009 (Core)\n',
        '/etc/redhat-release': 'CentOS Linux release 7.9.2009 (Core)\n',
      }),
    );
    expect(os).toMatchObject({ distro: 'centos', productName: 'CentOS Linux release 7.9.2009 (Core)', version: { major: 7, minor: 9 }, osinfo: 'centos7.0' });
    expect(os).toMatchObject({ prettyName: 'CentOS Linux 7 (Core)', osReleaseId: 'centos', packageManagement: 'yum' });
  });

  it('CentOS Stream 9: re_centos_no_minor → 9.0, osinfo centos9, dnf; CentOS 6 from redhat-release alone: re_centos after the RHEL patterns fail', () => {
    const stream = detectOne(
      linux({
        '/etc/os-release': osRelease({ ID: '"centos"', VERSION_ID: '"9"', PRETTY_NAME: '"CentOS Stream 9"' }),
        '/etc/centos-release': 'CentOS Stream release 9\n',
      }),
    );
    expect(stream).toMatchObject({
      distro: 'centos',
      productName: 'CentOS Stream release 9',
      version: { major: 9, minor: 0 },
      osinfo: 'centos9',
      packageManagement: 'dnf',
    });
    const six = detectOne(linux({ '/etc/redhat-release': 'CentOS release 6.10 (Final)\n' }));
    expect(six).toMatchObject({ distro: 'centos', version: { major: 6, minor: 10 }, osinfo: 'centos6.10' });
  });

  it('Rocky 9.3 by os-release (osinfo rocky9); Rocky 8 whose VERSION_ID has no minor goes on to rocky-release', () => {
    const nine = detectOne(linux({ '/etc/os-release': osRelease({ ID: '"rocky"', VERSION_ID: '"9.3"', PRETTY_NAME: '"Rocky Linux 9.3 (Blue Onyx)"' }) }));
    expect(nine).toMatchObject({ distro: 'rocky', version: { major: 9, minor: 3 }, osinfo: 'rocky9', packageManagement: 'dnf' });
    const eight = detectOne(
      linux({
        '/etc/os-release': osRelease({ ID: '"rocky"', VERSION_ID: '"8"', PRETTY_NAME: '"Rocky Linux 8"' }),
        '/etc/rocky-release': 'Rocky Linux release 8.9 (Green Obsidian)\n',
      }),
    );
    expect(eight).toMatchObject({ distro: 'rocky', productName: 'Rocky Linux release 8.9 (Green Obsidian)', version: { major: 8, minor: 9 } });
  });

  it('AlmaLinux: ID=almalinux is no distribution libguestfs knows; its redhat-release matches no family, so "redhat-based" (parse_generic without a pattern)', () => {
    const os = detectOne(
      linux({
        '/etc/os-release': osRelease({ NAME: '"AlmaLinux"', ID: '"almalinux"', VERSION_ID: '"9.4"', PRETTY_NAME: '"AlmaLinux 9.4 (Seafoam Ocelot)"' }),
        '/etc/redhat-release': 'AlmaLinux release 9.4 (Seafoam Ocelot)\n',
        '/etc/almalinux-release': 'AlmaLinux release 9.4 (Seafoam Ocelot)\n',
      }),
    );
    expect(os).toMatchObject({ distro: 'redhat-based', productName: 'AlmaLinux release 9.4 (Seafoam Ocelot)', version: { major: 9, minor: 4 } });
    expect(os).toMatchObject({
      osinfo: 'redhat-based9.4',
      packageFormat: 'rpm',
      packageManagement: 'dnf',
      osReleaseId: 'almalinux',
      prettyName: 'AlmaLinux 9.4 (Seafoam Ocelot)',
    });
  });

  it('Oracle Linux: ID="ol" unknown, oracle-release before redhat-release; Scientific Linux by its redhat-release pattern', () => {
    const ol = detectOne(
      linux({
        '/etc/os-release': osRelease({ ID: '"ol"', VERSION_ID: '"9.3"', PRETTY_NAME: '"Oracle Linux Server 9.3"' }),
        '/etc/oracle-release': 'Oracle Linux Server release 9.3\n',
        '/etc/redhat-release': 'Red Hat Enterprise Linux release 9.3 (Plow)\n',
      }),
    );
    expect(ol).toMatchObject({
      distro: 'oraclelinux',
      productName: 'Oracle Linux Server release 9.3',
      version: { major: 9, minor: 3 },
      osinfo: 'oraclelinux9.3',
    });
    const sl = detectOne(linux({ '/etc/redhat-release': 'Scientific Linux release 6.4 (Carbon)\n' }));
    expect(sl).toMatchObject({ distro: 'scientificlinux', version: { major: 6, minor: 4 }, packageManagement: 'yum' });
  });

  it('a redhat-release with nothing parseable: a failed pattern leaves its distribution set, the last rule says redhat-based', () => {
    expect(detectOne(linux({ '/etc/redhat-release': 'Some Enterprise Thing\n' }))).toMatchObject({
      distro: 'redhat-based',
      productName: 'Some Enterprise Thing',
    });
    // An empty one: parse_generic fails on it (no first line), the final rule names the family only.
    const empty = detectOne(linux({ '/etc/redhat-release': '' }));
    expect(empty).toMatchObject({ distro: 'redhat-based', version: { major: 0, minor: 0 } });
    expect(empty!.productName).toBeUndefined();
    expect(empty!.packageManagement).toBeUndefined(); // major 0: "probably parsing the release file failed"
  });

  it('a rocky-release that no Rocky pattern matches: parse_generic had set rocky and the line, and nothing after succeeds', () => {
    expect(detectOne(linux({ '/etc/rocky-release': 'Rocky Linux\n' }))).toMatchObject({
      distro: 'rocky',
      productName: 'Rocky Linux',
      version: { major: 0, minor: 0 },
    });
  });
});

describe('SUSE: SuSE-release (parse_suse_release) and os-release', () => {
  it('SLES 11 SP4: VERSION and PATCHLEVEL lines; osinfo sles11sp4', () => {
    const os = detectOne(linux({ '/etc/SuSE-release': 'SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n' }));
    expect(os).toMatchObject({
      distro: 'sles',
      productName: 'SUSE Linux Enterprise Server 11 (x86_64)',
      version: { major: 11, minor: 4 },
      osinfo: 'sles11sp4',
    });
    expect(os).toMatchObject({ packageFormat: 'rpm', packageManagement: 'zypper' });
  });

  it('SLES 15 SP5 and openSUSE Leap by os-release (ID sles, opensuse-leap); osinfo sle15sp5 from 15 on', () => {
    const sles = detectOne(
      linux({ '/etc/os-release': osRelease({ ID: '"sles"', VERSION_ID: '"15.5"', PRETTY_NAME: '"SUSE Linux Enterprise Server 15 SP5"' }) }),
    );
    expect(sles).toMatchObject({ distro: 'sles', version: { major: 15, minor: 5 }, osinfo: 'sle15sp5' });
    const leap = detectOne(linux({ '/etc/os-release': osRelease({ ID: '"opensuse-leap"', VERSION_ID: '"15.5"', PRETTY_NAME: '"openSUSE Leap 15.5"' }) }));
    expect(leap).toMatchObject({ distro: 'opensuse', version: { major: 15, minor: 5 }, osinfo: 'opensuse15.5', packageManagement: 'zypper' });
  });

  it('openSUSE 13.1 by SuSE-release: the version on line 2; an unknown SuSE-release is suse-based', () => {
    const os = detectOne(linux({ '/etc/SuSE-release': 'openSUSE 13.1 (x86_64)\nVERSION = 13.1\nCODENAME = Bottle\n' }));
    expect(os).toMatchObject({ distro: 'opensuse', version: { major: 13, minor: 1 }, osinfo: 'opensuse13.1' });
    // parse_suse_release succeeds with a product name but no distribution: the rule after it is never reached.
    expect(detectOne(linux({ '/etc/SuSE-release': 'Something SUSE-like\n' }))).toMatchObject({ productName: 'Something SUSE-like' });
  });
});

describe('Debian and Ubuntu: debian_version, lsb-release, os-release', () => {
  it('Debian 5.0.1 from debian_version alone (the phony guest): product "5.0.1", osinfo debian5, apt', () => {
    const os = detectOne(linux({ '/etc/debian_version': '5.0.1\n', '/etc/hostname': 'debian.invalid\n' }));
    expect(os).toMatchObject({
      distro: 'debian',
      productName: '5.0.1',
      version: { major: 5, minor: 0 },
      osinfo: 'debian5',
      packageFormat: 'deb',
      packageManagement: 'apt',
    });
    expect(os!.hostname).toBe('debian.invalid');
  });

  it('Debian 12: VERSION_ID="12" has no minor, so debian_version names the product ("12.15"); PRETTY_NAME is kept apart', () => {
    const os = detectOne(
      linux({
        '/etc/os-release': osRelease({ PRETTY_NAME: '"Debian GNU/Linux 12 (bookworm)"', NAME: '"Debian GNU/Linux"', VERSION_ID: '"12"', ID: 'debian' }),
        '/etc/debian_version': '12.15\n',
      }),
    );
    expect(os).toMatchObject({
      distro: 'debian',
      productName: '12.15',
      version: { major: 12, minor: 15 },
      osinfo: 'debian12',
      prettyName: 'Debian GNU/Linux 12 (bookworm)',
    });
  });

  it('Debian testing: no VERSION_ID, debian_version "trixie/sid" has no number: version 0.0 and no osinfo', () => {
    const os = detectOne(
      linux({ '/etc/os-release': osRelease({ PRETTY_NAME: '"Debian GNU/Linux trixie/sid"', ID: 'debian' }), '/etc/debian_version': 'trixie/sid\n' }),
    );
    expect(os).toMatchObject({ distro: 'debian', productName: 'trixie/sid', version: { major: 0, minor: 0 } });
    expect(os!.osinfo).toBeUndefined();
  });

  it('Ubuntu 10.10 by lsb-release (the phony guest); Ubuntu 22.04 by os-release: osinfo pads the minor (ubuntu22.04)', () => {
    const lsb = 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.10\nDISTRIB_CODENAME=maverick\nDISTRIB_DESCRIPTION="Ubuntu 10.10 (Phony Pharaoh)"\n';
    const old = detectOne(linux({ '/etc/lsb-release': lsb, '/etc/debian_version': '5.0.1\n' }));
    expect(old).toMatchObject({ distro: 'ubuntu', productName: 'Ubuntu 10.10 (Phony Pharaoh)', version: { major: 10, minor: 10 }, osinfo: 'ubuntu10.10' });
    const jammy = detectOne(linux({ '/etc/os-release': osRelease({ PRETTY_NAME: '"Ubuntu 22.04.4 LTS"', VERSION_ID: '"22.04"', ID: 'ubuntu' }) }));
    expect(jammy).toMatchObject({ distro: 'ubuntu', productName: 'Ubuntu 22.04.4 LTS', version: { major: 22, minor: 4 }, osinfo: 'ubuntu22.04' });
  });

  it('Linux Mint: ID=linuxmint is unknown to os-release’s table, lsb-release’s DISTRIB_ID=LinuxMint is not', () => {
    const os = detectOne(
      linux({
        '/etc/os-release': osRelease({ ID: 'linuxmint', VERSION_ID: '"21.3"', PRETTY_NAME: '"Linux Mint 21.3"' }),
        '/etc/lsb-release': 'DISTRIB_ID=LinuxMint\nDISTRIB_RELEASE=21.3\nDISTRIB_DESCRIPTION="Linux Mint 21.3 Virginia"\n',
      }),
    );
    expect(os).toMatchObject({ distro: 'linuxmint', productName: 'Linux Mint 21.3 Virginia', version: { major: 21, minor: 3 }, packageManagement: 'apt' });
  });

  it('os-release quoting is the shell’s (shell_unquote): escapes inside double quotes, none inside single ones', () => {
    const os = detectOne(linux({ '/etc/os-release': 'ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="A \\"quoted\\" \\$name"\n' }));
    expect(os!.productName).toBe('A "quoted" $name');
    expect(detectOne(linux({ '/etc/os-release': "ID=ubuntu\nVERSION_ID='22.04'\nPRETTY_NAME='A \\\"b'\n" }))!.productName).toBe('A \\"b');
  });
});

describe('rolling and other distributions', () => {
  it('Arch: the empty arch-release names it (the phony guest); with os-release, no VERSION_ID is whole for a rolling distribution', () => {
    const phony = detectOne(linux({ '/etc/arch-release': '', '/etc/hostname': 'archlinux.test' }));
    expect(phony).toMatchObject({
      distro: 'archlinux',
      version: { major: 0, minor: 0 },
      packageFormat: 'pacman',
      packageManagement: 'pacman',
      osinfo: 'archlinux',
    });
    expect(phony!.productName).toBeUndefined();
    const real = detectOne(
      linux({ '/etc/os-release': osRelease({ NAME: '"Arch Linux"', PRETTY_NAME: '"Arch Linux"', ID: 'arch', BUILD_ID: 'rolling' }), '/etc/arch-release': '' }),
    );
    expect(real).toMatchObject({ distro: 'archlinux', productName: 'Arch Linux', buildId: 'rolling', version: { major: 0, minor: 0 } });
  });

  it('Gentoo, Alpine (os-release and alpine-release), Void', () => {
    expect(detectOne(linux({ '/etc/gentoo-release': 'Gentoo Base System release 2.14\n' }))).toMatchObject({
      distro: 'gentoo',
      version: { major: 2, minor: 14 },
      packageFormat: 'ebuild',
      packageManagement: 'portage',
      osinfo: 'gentoo',
    });
    const alpine = detectOne(
      linux({ '/etc/os-release': osRelease({ ID: 'alpine', VERSION_ID: '3.19.1', PRETTY_NAME: '"Alpine Linux v3.19"' }), '/etc/alpine-release': '3.19.1\n' }),
    );
    expect(alpine).toMatchObject({ distro: 'alpinelinux', productName: 'Alpine Linux v3.19', version: { major: 3, minor: 19 }, osinfo: 'alpinelinux3.19' });
    expect(alpine).toMatchObject({ packageFormat: 'apk', packageManagement: 'apk' });
    expect(detectOne(linux({ '/etc/alpine-release': '3.19.1\n' }))).toMatchObject({
      distro: 'alpinelinux',
      productName: '3.19.1',
      version: { major: 3, minor: 19 },
    });
    const void_ = detectOne(linux({ '/etc/os-release': osRelease({ NAME: '"Void"', ID: '"void"', PRETTY_NAME: '"Void Linux"' }) }));
    expect(void_).toMatchObject({
      distro: 'voidlinux',
      version: { major: 0, minor: 0 },
      osinfo: 'voidlinux',
      packageFormat: 'xbps',
      packageManagement: 'xbps',
    });
  });

  it('NixOS: ID=nixos names no distribution, but PRETTY_NAME and VERSION_ID were read before parse_os_release gave up', () => {
    const os = detectOne(linux({ '/etc/os-release': osRelease({ ID: 'nixos', VERSION_ID: '"24.05"', PRETTY_NAME: '"NixOS 24.05 (Uakari)"' }) }));
    expect(os).toMatchObject({ type: 'linux', productName: 'NixOS 24.05 (Uakari)', version: { major: 24, minor: 5 }, osReleaseId: 'nixos' });
    expect([os!.distro, os!.osinfo, os!.packageFormat]).toEqual([undefined, undefined, undefined]);
  });

  it('Kali, openEuler, NeoKylin’s "V7Update6" VERSION_ID (parse_os_release_version_id)', () => {
    expect(detectOne(linux({ '/etc/os-release': osRelease({ ID: 'kali', VERSION_ID: '"2024.1"', PRETTY_NAME: '"Kali GNU/Linux Rolling"' }) }))).toMatchObject({
      distro: 'kalilinux',
    });
    expect(detectOne(linux({ '/etc/os-release': osRelease({ ID: '"openEuler"', VERSION_ID: '"22.03"', PRETTY_NAME: '"openEuler 22.03"' }) }))).toMatchObject({
      distro: 'openeuler',
      packageManagement: 'dnf',
    });
    const neo = detectOne(linux({ '/etc/os-release': osRelease({ ID: 'neokylin', VERSION_ID: 'V7Update6', PRETTY_NAME: '"NeoKylin 7"' }) }));
    expect(neo).toMatchObject({ distro: 'neokylin', version: { major: 7, minor: 6 } });
  });

  it('br-version: CirrOS where /usr/share/cirros/logo is there, Buildroot where not', () => {
    expect(detectOne(linux({ '/etc/br-version': '2015.05-g31b1a6f\n', '/usr/share/cirros/logo': '' }))).toMatchObject({
      distro: 'cirros',
      version: { major: 2015, minor: 5 },
    });
    expect(detectOne(linux({ '/etc/br-version': '2015.05-g31b1a6f\n' }))).toMatchObject({ distro: 'buildroot' });
  });

  it('os-release comes first: a Fedora os-release wins over a redhat-release that says RHEL', () => {
    const os = detectOne(
      linux({
        '/etc/os-release': osRelease({ ID: 'fedora', VERSION_ID: '40', PRETTY_NAME: '"Fedora Linux 40"' }),
        '/etc/redhat-release': 'Red Hat Enterprise Linux release 9.4 (Plow)\n',
      }),
    );
    expect(os).toMatchObject({ distro: 'fedora', version: { major: 40, minor: 0 } });
  });
});

describe('hostname (check_hostname_linux) and arch (check_architecture)', () => {
  it('/etc/HOSTNAME before /etc/hostname; comments and blank lines skipped; the line as written', () => {
    expect(detectOne(linux({ '/etc/HOSTNAME': 'old.example\n', '/etc/hostname': 'new.example\n' }))!.hostname).toBe('old.example');
    expect(detectOne(linux({ '/etc/hostname': '# set by the installer\n\nhost.example \n' }))!.hostname).toBe('host.example ');
  });

  it('/etc/sysconfig/network HOSTNAME= as augeas stores it (quotes kept), none when set twice', () => {
    expect(detectOne(linux({ '/etc/sysconfig/network': 'NETWORKING=yes\nHOSTNAME=rhel.example\n' }))!.hostname).toBe('rhel.example');
    expect(detectOne(linux({ '/etc/sysconfig/network': 'HOSTNAME="rhel.example"\n' }))!.hostname).toBe('"rhel.example"');
    expect(detectOne(linux({ '/etc/sysconfig/network': 'HOSTNAME=a\nHOSTNAME=b\n' }))!.hostname).toBeUndefined();
    // A CRLF file (written on Windows): the line's \r stays in the value, as augeas and virt-inspector keep it (&#13;).
    expect(detectOne(linux({ '/etc/sysconfig/network': 'NETWORKING=yes\r\nHOSTNAME=rhel5b\r\n' }))!.hostname).toBe('rhel5b\r');
  });

  it('arch from the first of /bin/bash, /bin/ls, /bin/echo, /bin/rm, /bin/sh that is an ELF program: no /bin/sh (mmdebstrap --variant=extract) still has /bin/ls', () => {
    const os = detectOne({ '/etc/fstab': '', '/bin/ls': elfHeader(183), '/etc/debian_version': '12.15\n' });
    expect(os).toMatchObject({ arch: 'aarch64', distro: 'debian', packageManagement: 'apt' });
    // A script first: `file` gives no ELF, so the next program says.
    expect(detectOne({ '/etc/fstab': '', '/bin/bash': '#!/bin/sh\necho\n', '/bin/sh': elfHeader(40, { bits: 32 }) })!.arch).toBe('arm');
  });

  it('arch names as filearch.ml canonicalises `file`’s: i386, ppc64/ppc64le by byte order, s390/s390x and riscv by word size, loongarch64, and `file`’s own name where libguestfs has none', () => {
    const arch = (h: Buffer) => detectOne({ '/etc/fstab': '', '/bin/sh': h })!.arch;
    expect(arch(elfHeader(3, { bits: 32 }))).toBe('i386');
    expect(arch(elfHeader(21, { little: false }))).toBe('ppc64');
    expect(arch(elfHeader(21))).toBe('ppc64le');
    expect(arch(elfHeader(22, { little: false }))).toBe('s390x');
    expect(arch(elfHeader(22, { bits: 32, little: false }))).toBe('s390');
    expect(arch(elfHeader(243))).toBe('riscv64');
    expect(arch(elfHeader(258))).toBe('loongarch64');
    expect(arch(elfHeader(18, { bits: 32, little: false }))).toBe('sparc');
    expect(arch(elfHeader(8, { bits: 32 }))).toBe('MIPS');
    expect(arch(elfHeader(62, { type: 4 }))).toBeUndefined(); // a core file
  });
});

describe('what a filesystem is (inspect_fs.ml check_filesystem)', () => {
  it('a Linux root needs /etc/fstab or /etc/hosts; a Grub /boot is nothing, whatever else it holds', () => {
    expect(detectOne({ '/etc/hosts': '127.0.0.1 localhost\n', '/bin/sh': X86_64, '/etc/debian_version': '12.1\n' })).toMatchObject({ distro: 'debian' });
    expect(detectOne({ '/bin/sh': X86_64, '/etc/debian_version': '12.1\n' })).toBeUndefined();
    expect(detectOne(linux({ '/grub/grub.conf': '', '/etc/debian_version': '12.1\n' }))).toBeUndefined();
  });

  it('FreeBSD: freebsd-update.conf; version from motd’s first line, hostname from rc.conf, its fstab’s devices translated (ada0p3 → /dev/sda3)', () => {
    const os = detectOne({
      '/etc/fstab': '/dev/ada0p2 / ufs rw 1 1\n/dev/ada0p3 /usr ufs rw 2 2\n',
      '/etc/freebsd-update.conf': '',
      '/etc/motd': 'FreeBSD 13.2-RELEASE (GENERIC) releng/13.2\n\nWelcome!\n',
      '/etc/rc.conf': 'ifconfig_vtnet0="DHCP"\nhostname="bsd.example"\n',
      '/bin/sh': X86_64,
    });
    expect(os).toMatchObject({
      type: 'freebsd',
      distro: 'freebsd',
      version: { major: 13, minor: 2 },
      hostname: 'bsd.example',
      osinfo: 'freebsd13.2',
      arch: 'x86_64',
    });
    expect(os!.fstab).toEqual([
      { mountpoint: '/', id: 'disk0' },
      { mountpoint: '/usr', device: '/dev/sda3' },
    ]);
  });

  it('OpenBSD is typed freebsd by libguestfs (check_openbsd_root); NetBSD’s version by ^NetBSD N.M in /etc/release', () => {
    const openbsd = detectOne({ '/etc/fstab': '0123456789abcdef.a / ffs rw 1 1\n', '/bsd': '', '/etc/motd': 'OpenBSD 7.4 (GENERIC) #1\n', '/bin/sh': X86_64 });
    expect(openbsd).toMatchObject({ type: 'freebsd', distro: 'freebsd', version: { major: 7, minor: 4 } });
    const netbsd = detectOne({
      '/etc/fstab': '/dev/wd0a / ffs rw 1 1\n/dev/sd0e /home ffs rw 1 2\n/dev/wd0f /var ffs rw 1 2\n',
      '/netbsd': '',
      '/etc/release': 'NetBSD 9.3 (GENERIC)\n',
      '/bin/sh': X86_64,
    });
    expect(netbsd).toMatchObject({ type: 'netbsd', distro: 'netbsd', version: { major: 9, minor: 3 }, osinfo: 'netbsd9.3' });
    // sd0e: disklabel partition e (4), c and d skipped: sda7; wd names are not in libguestfs's pattern (ld, sd) and stay as written.
    expect(netbsd!.fstab).toEqual([
      { mountpoint: '/', id: 'disk0' },
      { mountpoint: '/home', device: '/dev/sda7' },
      { mountpoint: '/var', device: '/dev/wd0f' },
    ]);
  });
});

describe('fstab as libguestfs keeps it (inspect_fs_unix_fstab.ml)', () => {
  const fstab = [
    'UUID=1111 / ext4 defaults 0 1',
    'LABEL=boot /boot ext4 defaults 0 2',
    '/dev/root / ext4 defaults 0 1',
    'UUID=2222 none swap sw 0 0',
    'UUID=9999 /data ext4 defaults 0 2',
    '/dev/sdz1 /srv ext4 defaults 0 2',
    '/dev/fd0 /mnt/floppy auto noauto 0 0',
    'proc /proc proc defaults 0 0',
    'tmpfs /tmp tmpfs defaults 0 0',
    'nas:/export /nas nfs defaults 0 0',
    '/dev/sdb1 /media/usb auto noauto 0 0',
    '/dev/sda3 ///var//log/ ext4 defaults 0 2',
  ].join('\n');
  const table = { 'UUID=1111': 'disk0:1', 'LABEL=boot': 'disk0:2', 'UUID=2222': 'disk0:4', '/dev/sda3': 'disk0:3' };

  it('swap listed (not a mount point), a second "/" dropped, unknown tags dropped, unknown /dev names kept as written, pseudo filesystems and removable media left out', () => {
    const [os] = detectSystems([{ info: { id: 'disk0:1', type: 'ext4' }, files: treeFiles(linux({ '/etc/fstab': fstab })) }], matcher(table));
    expect(os!.fstab).toEqual([
      { mountpoint: '/', id: 'disk0:1' },
      { mountpoint: '/boot', id: 'disk0:2' },
      { mountpoint: 'none', id: 'disk0:4' },
      { mountpoint: '/srv', device: '/dev/sdz1' },
      { mountpoint: '/var/log', id: 'disk0:3' },
    ]);
    expect(os!.mountpoints).toEqual({ '/': 'disk0:1', '/boot': 'disk0:2', '/var/log': 'disk0:3' });
    expect(os!.unmatched).toEqual(['UUID=9999 /data', '/dev/sdz1 /srv', 'nas:/export /nas']);
  });
});

describe('fstab escapes', () => {
  it('are decoded as getmntent decodes them: \\040 a space, \\011 a tab, \\012 a newline, \\134 and \\\\ a backslash', () => {
    const fstab = [
      '/dev/sda1 / ext4 defaults 0 1',
      '/dev/sda2 /a\\040b ext4 defaults 0 2',
      '/dev/sda3 /t\\011ab ext4 defaults 0 2',
      '/dev/sda4 /n\\012l ext4 defaults 0 2',
      '/dev/sda5 /b\\134s\\\\x ext4 defaults 0 2',
      '',
    ].join('\n');
    const table = { '/dev/sda1': 'disk0:1', '/dev/sda2': 'disk0:2', '/dev/sda3': 'disk0:3', '/dev/sda4': 'disk0:4', '/dev/sda5': 'disk0:5' };
    const [os] = detectSystems([{ info: { id: 'disk0:1', type: 'ext4' }, files: treeFiles(linux({ '/etc/fstab': fstab })) }], matcher(table));
    expect(Object.keys(os!.mountpoints).sort()).toEqual(['/', '/a b', '/b\\s\\x', '/n\nl', '/t\tab']);
  });
});

describe('long files', () => {
  it('an fstab or os-release past 64 KiB is read whole (a line at its end counts); one past 1 000 000 bytes is left unread, as libguestfs leaves it, and said', () => {
    const padding = '# padding\n'.repeat(7000); // 70 KB
    const fstab = `/dev/sda1 / ext4 defaults 0 1\n${padding}/dev/sda2 /home ext4 defaults 0 2\n`;
    const release = `${padding}${osRelease({ NAME: '"Debian GNU/Linux"', VERSION_ID: '"12"', ID: 'debian' })}`;
    const table = { '/dev/sda1': 'disk0:1', '/dev/sda2': 'disk0:2' };
    const [os] = detectSystems(
      [{ info: { id: 'disk0:1', type: 'ext4' }, files: treeFiles(linux({ '/etc/fstab': fstab, '/etc/os-release': release })) }],
      matcher(table),
    );
    expect(os!.mountpoints).toEqual({ '/': 'disk0:1', '/home': 'disk0:2' });
    expect([os!.distro, os!.version.major]).toEqual(['debian', 12]);
    expect(os!.warnings).toBeUndefined();
    const huge = `${'# padding\n'.repeat(100_001)}/dev/sda2 /home ext4 defaults 0 2\n`;
    const [big] = detectSystems(
      [{ info: { id: 'disk0:1', type: 'ext4' }, files: treeFiles(linux({ '/etc/fstab': huge, '/etc/os-release': release })) }],
      matcher(table),
    );
    expect(big!.mountpoints).toEqual({ '/': 'disk0:1' });
    expect(big!.warnings).toEqual(['/etc/fstab is larger than 1000000 bytes: not read, as libguestfs does not read it']);
  });
});

describe('the passes over all filesystems (inspect.ml)', () => {
  it('CoreOS (the phony guest): the root (update.conf) takes its /usr’s os-release; mount points / and /usr (collect_coreos_inspection_info)', () => {
    const release = osRelease({
      NAME: 'CoreOS',
      ID: 'coreos',
      VERSION: '899.13.0',
      VERSION_ID: '899.13.0',
      BUILD_ID: '2016-03-23-0120',
      PRETTY_NAME: '"CoreOS 899.13.0"',
    });
    const found = detectSystems(
      [
        { info: { id: 'disk0:3', type: 'ext4' }, files: treeFiles({ '/lib/os-release': release }) },
        { info: { id: 'disk0:5', type: 'ext4' }, files: treeFiles({ '/etc/coreos/update.conf': 'GROUP=stable\n', '/etc/hostname': 'coreos.invalid' }) },
      ],
      matcher({}),
    );
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      root: 'disk0:5',
      distro: 'coreos',
      productName: 'CoreOS 899.13.0',
      version: { major: 899, minor: 13 },
      hostname: 'coreos.invalid',
    });
    expect(found[0]).toMatchObject({ buildId: '2016-03-23-0120', osinfo: 'coreos899.13', mountpoints: { '/': 'disk0:5', '/usr': 'disk0:3' } });
    expect(found[0]!.packageFormat).toBeUndefined();
  });

  it('a root whose os-release is on its /usr (collect_linux_inspection_info): the /usr its fstab mounts gives what the root lacks', () => {
    const root = linux({ '/etc/fstab': 'UUID=r / ext4 defaults 0 1\nUUID=u /usr ext4 defaults 0 2\n', '/etc/hostname': 'split.example\n' });
    const usr = { '/lib/os-release': osRelease({ ID: 'fedora', VERSION_ID: '40', PRETTY_NAME: '"Fedora Linux 40"' }), '/bin/bash': elfHeader(183) };
    const found = detectSystems(
      [
        { info: { id: 'disk0:1', type: 'ext4' }, files: treeFiles(root) },
        { info: { id: 'disk0:2', type: 'ext4' }, files: treeFiles(usr) },
      ],
      matcher({ 'UUID=r': 'disk0:1', 'UUID=u': 'disk0:2' }),
    );
    expect(found).toHaveLength(1);
    // The root's own arch (x86_64) stays; the distribution and version come from /usr.
    expect(found[0]).toMatchObject({ root: 'disk0:1', distro: 'fedora', version: { major: 40, minor: 0 }, arch: 'x86_64', hostname: 'split.example' });
  });

  it('a merged /usr on a filesystem of its own: the root (/bin -> usr/bin, os-release -> ../usr/lib/os-release, nothing readable there) is found, as libguestfs finds it', () => {
    const root = {
      '/bin': { link: 'usr/bin' },
      '/lib': { link: 'usr/lib' },
      '/etc/os-release': { link: '../usr/lib/os-release' },
      '/etc/fstab': 'LABEL=L1 / ext4 defaults 0 1\nLABEL=L2 /usr ext4 defaults 0 2\n',
      '/etc/hostname': 'msroot\n',
    };
    const usr = { '/lib/os-release': osRelease({ ID: 'fedora', VERSION_ID: '39', PRETTY_NAME: '"Fedora Linux 39"' }), '/bin/bash': elfHeader(183) };
    const found = detectSystems(
      [
        { info: { id: 'disk0:1', type: 'ext4' }, files: treeFiles(root) },
        { info: { id: 'disk0:2', type: 'ext4' }, files: treeFiles(usr) },
      ],
      matcher({ 'LABEL=L1': 'disk0:1', 'LABEL=L2': 'disk0:2' }),
    );
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ root: 'disk0:1', distro: 'fedora', version: { major: 39, minor: 0 }, arch: 'aarch64', hostname: 'msroot' });
    expect(found[0]!.mountpoints).toEqual({ '/': 'disk0:1', '/usr': 'disk0:2' });
    // A /bin that is a folder with none of the programs arch is read from (busybox), as is_dir says: a root, no arch.
    const busybox = detectOne({ '/bin/busybox': X86_64, '/etc/hosts': '127.0.0.1 localhost\n', '/etc/alpine-release': '3.18.4\n' });
    expect(busybox).toMatchObject({ distro: 'alpinelinux', version: { major: 3, minor: 18 } });
    expect(busybox!.arch).toBeUndefined();
    // A symlink to anywhere else, with nothing behind it, is not a /bin (libguestfs: exactly "usr/bin").
    expect(detectOne({ '/bin': { link: 'opt/bin' }, '/etc/hosts': 'x\n' })).toBeUndefined();
  });

  it('a btrfs subvolume whose root says what its filesystem’s root says is a snapshot, and dropped; one that differs stays', () => {
    const tree = linux({ '/etc/os-release': osRelease({ ID: 'opensuse-tumbleweed', VERSION_ID: '"20240101"', PRETTY_NAME: '"openSUSE Tumbleweed"' }) });
    const older = linux({ '/etc/os-release': osRelease({ ID: 'opensuse-tumbleweed', VERSION_ID: '"20231201"', PRETTY_NAME: '"openSUSE Tumbleweed"' }) });
    const found = detectSystems(
      [
        { info: { id: 'disk0:2', type: 'btrfs' }, files: treeFiles(tree) },
        { info: { id: 'btrfsvol:disk0:2/@/.snapshots/1/snapshot', type: 'btrfs', subvolume: '@/.snapshots/1/snapshot' }, files: treeFiles(tree) },
        { info: { id: 'btrfsvol:disk0:2/@/.snapshots/2/snapshot', type: 'btrfs', subvolume: '@/.snapshots/2/snapshot' }, files: treeFiles(older) },
      ],
      matcher({}),
    );
    expect(found.map((o) => o.root)).toEqual(['disk0:2', 'btrfsvol:disk0:2/@/.snapshots/2/snapshot']);
    expect(found[0]).toMatchObject({ distro: 'opensuse', version: { major: 20240101, minor: 0 }, osinfo: 'opensuse20240101.0' });
  });
});

describe('OSTree deployments (Fedora CoreOS): beyond libguestfs, which finds no root in them', () => {
  it('a sysroot is known by /ostree/repo/config; its deployments from a walk of /ostree/deploy; each one a root with its own files', () => {
    const csum = 'a'.repeat(64);
    expect(isOstreeSysroot(treeFiles({ '/ostree/repo/config': '[core]\nmode=bare\n' }))).toBe(true);
    expect(isOstreeSysroot(treeFiles({ '/etc/fstab': '' }))).toBe(false);
    const folders = [
      '/ostree/deploy',
      '/ostree/deploy/fedora-coreos',
      '/ostree/deploy/fedora-coreos/deploy',
      `/ostree/deploy/fedora-coreos/deploy/${csum}.0`,
      '/ostree/deploy/fedora-coreos/var',
    ];
    const [deployment] = deploymentsOf(folders);
    expect(deploymentsOf(folders)).toEqual([{ path: `/ostree/deploy/fedora-coreos/deploy/${csum}.0`, var: '/ostree/deploy/fedora-coreos/var' }]);
    const release =
      'NAME="Fedora Linux"\nVERSION="39.20240112.3.0 (CoreOS)"\nID=fedora\nVERSION_ID=39\nVARIANT_ID=coreos\nPRETTY_NAME="Fedora CoreOS 39.20240112.3.0"\n';
    const found = detectSystems(
      [
        { info: { id: 'disk0:4', type: 'xfs' }, files: treeFiles({ '/ostree/repo/config': '' }) },
        {
          info: { id: 'disk0:4', type: 'xfs' },
          deployment,
          files: treeFiles({ '/etc/os-release': release, '/etc/hosts': '', '/bin/bash': elfHeader(183) }),
        },
      ],
      matcher({}),
    );
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      root: 'disk0:4',
      deployment,
      distro: 'fedora',
      productName: 'Fedora CoreOS 39.20240112.3.0',
      osinfo: 'fedora39',
      arch: 'aarch64',
    });
  });
});

describe('osinfo ids (lib/inspect-osinfo.c)', () => {
  it('Windows by version, variant, product name and build', () => {
    const win = (major: number, minor: number, productVariant: string, productName = '', buildId?: string) =>
      osinfoId({ type: 'windows', distro: 'windows', version: { major, minor }, productName, productVariant, buildId });
    expect(win(6, 1, 'Client')).toBe('win7');
    expect(win(6, 1, 'Server')).toBe('win2k8r2');
    expect(win(5, 2, 'Server', 'Microsoft Windows Server 2003 R2')).toBe('win2k3r2');
    expect(win(10, 0, 'Server', 'Windows Server 2022 Datacenter')).toBe('win2k22');
    expect(win(10, 0, 'Server', 'Windows Server 2016 Standard')).toBe('win2k16');
    expect(win(10, 0, 'Client', 'Windows 11 Pro', '22631')).toBe('win11');
    expect(win(10, 0, 'Client', 'Windows 10 Pro', '19045')).toBe('win10');
  });

  it('Linux: altlinux from 8 is altN.M; others without a version have none', () => {
    expect(osinfoId({ type: 'linux', distro: 'altlinux', version: { major: 10, minor: 1 } })).toBe('alt10.1');
    expect(osinfoId({ type: 'linux', distro: 'altlinux', version: { major: 7, minor: 0 } })).toBe('altlinux7.0');
    expect(osinfoId({ type: 'linux', distro: 'mageia', version: { major: 9, minor: 0 } })).toBe('mageia9');
    expect(osinfoId({ type: 'linux', distro: 'slackware', version: { major: 0, minor: 0 } })).toBeUndefined();
  });
});

describe("libguestfs's device names for our ids (device-names.ts)", () => {
  it('disks by letter (aa after z), partitions, LVs, md arrays, LUKS, btrfs subvolumes of each; fstab names canonicalised as guestfs_canonical_device_name does', () => {
    expect(['disk0', 'disk25', 'disk26', 'disk701', 'disk1:3', 'vg/root', 'md:md127', 'luks:1234-5678'].map((id) => libguestfsDevice(id))).toEqual([
      '/dev/sda',
      '/dev/sdz',
      '/dev/sdaa',
      '/dev/sdzz',
      '/dev/sdb3',
      '/dev/vg/root',
      '/dev/md127',
      '/dev/mapper/luks-1234-5678',
    ]);
    expect(['btrfsvol:disk0:2/@/.snapshots/1/snapshot', 'btrfsvol:vg/lv/@home', 'btrfsvol:luks:ab/@'].map((id) => libguestfsDevice(id))).toEqual([
      'btrfsvol:/dev/sda2/@/.snapshots/1/snapshot',
      'btrfsvol:/dev/vg/lv/@home',
      'btrfsvol:/dev/mapper/luks-ab/@',
    ]);
    expect(['/dev/vdb1', '/dev/xvda', '/dev/hda2', '/dev/md0', '/dev/mapper/x', '/dev/nvme0n1p1', '/dev/disk/by-id/x'].map(canonicalDeviceName)).toEqual([
      '/dev/sdb1',
      '/dev/sda',
      '/dev/sda2',
      '/dev/md0',
      '/dev/mapper/x',
      '/dev/nvme0n1p1',
      '/dev/disk/by-id/x',
    ]);
  });
});
