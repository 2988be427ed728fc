// OS detection on hostile files: release files, os-release, fstab, hostname files, ELF
// headers and package databases mutated with fixed seeds, truncated, made huge or absurd.
// Nothing may throw (but an ApplianceError), loop or take long; the XML stays well-formed.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { detectSystems } from '../../src/inspect/os.js';
import { toInspectorXml } from '../../src/inspect/os/xml.js';
import { packagesOf, pacmanPackage } from '../../src/inspect/packages.js';
import { elfHeader, matcher, treeFiles, X86_64, type Tree } from '../helpers/os-files.js';

/** mulberry32: the same mutations every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(b: Buffer, r: () => number): Buffer {
  const out = Buffer.from(b);
  const kind = Math.floor(r() * 4);
  if (kind === 0 && out.length) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
  if (kind === 1) return out.subarray(0, Math.floor(r() * out.length));
  if (kind === 2) return Buffer.concat([out, Buffer.from([0, 0xff, 0x0a, 0x3d, 0x22, 0x27, 0x5c].map(() => Math.floor(r() * 256)))]);
  if (kind === 3 && out.length) out.fill(Math.floor(r() * 256), Math.floor(r() * out.length), Math.floor(r() * out.length));
  return out;
}

const SEEDS: Record<string, string | Buffer> = {
  '/etc/os-release': 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39"\nBUILD_ID="x"\n',
  '/etc/lsb-release': 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.10\nDISTRIB_DESCRIPTION="Ubuntu 10.10"\n',
  '/etc/redhat-release': 'Red Hat Enterprise Linux AS release 4 (Nahant Update 9)\n',
  '/etc/SuSE-release': 'SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n',
  '/etc/debian_version': '12.15\n',
  '/etc/fstab': 'UUID=a / ext4 defaults,subvol=@ 0 1\n/dev/sdb1 /srv ext4 defaults 0 2\nLABEL=x none swap sw 0 0\n',
  '/etc/sysconfig/network': 'HOSTNAME="a b";c\n',
  '/etc/hostname': '# c\nhost\n',
  '/etc/rc.conf': 'hostname="x"\n',
  '/bin/bash': X86_64,
  '/bin/sh': elfHeader(21, { little: false }),
};

describe('hostile files', () => {
  it('5000 mutated roots (fixed seeds): detection never throws and stays fast; the XML of each is well-formed', () => {
    const r = rng(0x05d37ec7);
    const started = performance.now();
    const xmls: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const tree: Tree = {};
      for (const [path, content] of Object.entries(SEEDS)) if (r() < 0.7) tree[path] = mutate(Buffer.from(content), r);
      const oses = detectSystems([{ info: { id: 'disk0', type: 'ext4' }, files: treeFiles(tree) }], matcher({ 'UUID=a': 'disk0' }));
      if (i % 250 === 0) xmls.push(toInspectorXml(oses, [{ id: 'disk0', type: 'ext4' }]));
    }
    expect(performance.now() - started).toBeLessThan(10_000);
    for (const xml of xmls) expect(spawnSync('xmllint', ['--noout', '-'], { input: xml }).status).toBe(0);
  });

  it('a release file whose 64 KiB first line is made for backtracking patterns ("Red Hat … release N …" without "Update") is decided within a second', () => {
    const line = 'Red Hat release 1 '.repeat(4000).slice(0, 64 * 1024);
    const started = performance.now();
    const [os] = detectSystems(
      [{ info: { id: 'disk0', type: 'ext4' }, files: treeFiles({ '/etc/fstab': '', '/bin/sh': X86_64, '/etc/redhat-release': line }) }],
      matcher({}),
    );
    expect(performance.now() - started).toBeLessThan(1000);
    expect(os).toMatchObject({ distro: 'rhel', version: { major: 1, minor: 0 } });
  });

  it('absurd numbers and shapes: versions past 2^53, empty and one-line files, headers cut short, an epoch past int32', () => {
    const tree = (files: Tree) => detectSystems([{ info: { id: 'disk0', type: 'ext4' }, files: treeFiles({ '/etc/fstab': '', ...files }) }], matcher({}))[0];
    expect(tree({ '/bin/sh': X86_64, '/etc/os-release': 'ID=fedora\nVERSION_ID=99999999999999999999.1\nPRETTY_NAME=x\n' })!.version).toEqual({
      major: 0,
      minor: 0,
    });
    expect(tree({ '/bin/sh': X86_64.subarray(0, 19), '/etc/SuSE-release': '' })).toMatchObject({ productName: '' });
    expect(tree({ '/bin/sh': X86_64, '/etc/sysconfig/network': 'HOSTNAME=' })!.hostname).toBeUndefined();
    expect(pacmanPackage('%NAME%\na\n\n%VERSION%\n99999999999:1-1\n\n%ARCH%\nany\n')).toBeUndefined();
    expect(packagesOf('apk', 'P\nV\nA\n\n')).toEqual([{ name: '', epoch: 0, version: '', release: '', arch: '' }]);
  });

  it('10000 mutated package databases (dpkg status, apk installed, pacman desc) parse without a throw', () => {
    const r = rng(0x9ac3a9);
    const dpkg = 'Package: a\nStatus: install ok installed\nVersion: 1:2-3\nArchitecture: amd64\n\n';
    const apk = 'P:a\nV:1.0-r2\nA:x86\nT:t\nU:u\n\n';
    const desc = '%NAME%\na\n\n%VERSION%\n1:2-3\n\n%ARCH%\nany\n\n';
    for (let i = 0; i < 10000; i++) {
      packagesOf('deb', mutate(Buffer.from(dpkg), r).toString('utf8'));
      packagesOf('apk', mutate(Buffer.from(apk), r).toString('utf8'));
      pacmanPackage(mutate(Buffer.from(desc), r).toString('utf8'));
    }
  });
});
