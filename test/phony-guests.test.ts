// libguestfs's own inspection test set, its phony guests (helpers/phony-guests.ts builds
// them with guestfish), inspected by ours (`appliance inspect --xml`, a real VM) and by
// virt-inspector: the documents must be equal byte for byte, but for two differences on
// purpose, each said where it is made:
// - CoreOS's <build_id>: virt-inspector 1.48 (Debian 12's) predates the field; later
//   versions print it from os-release's BUILD_ID, as ours does.
// - The Fedora guests' applications: libguestfs 1.48 cannot list an rpm sqlite database on
//   this host (its rpm library fails in rpmtsInitIterator), so virt-inspector runs with
//   --no-applications there and ours' list is compared with `rpm -qa` on the database the
//   guest was given instead.
// - md arrays' names: libguestfs's appliance numbers them as udev assembles them, in either
//   order from one run to the next (seen on fedora-md: /boot on md127, then on md126); ours
//   are fixed (md127 for the array of the first member by name). Theirs are named as ours by
//   the filesystem each holds (its UUID) before comparing.
// Every document of ours must also validate against virt-inspector.rng.
//
// CI compares seven of the ten (each libguestfs launch is ~30-50 s of TCG on a busy 2-core
// host, and the suite must stay under 20 minutes): not fedora (rpm on LVM, which
// fedora-luks-on-lvm and fedora-md have too, and it takes a guestfish launch of its own),
// ubuntu (dpkg and release files as debian) nor fedora-btrfs (btrfs subvolumes, compared
// with libguestfs in inspect-volumes.test.ts). All ten: `bash scripts/phony-guests.sh`
// (APPLIANCE_PHONY_GUESTS=all).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RpmPackage } from '../src/formats/rpm/index.js';
import { inspect } from '../src/inspect/index.js';
import { limited, virt } from './helpers/guestfs.js';
import { run } from './helpers/proc.js';
import { imagesOf, LUKS_ON_LVM_KEYS, LVM_ON_LUKS_KEY, phonyGuests, PHONY_GUESTS, rpmListOf, type PhonyGuest } from './helpers/phony-guests.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const CLI = resolve('dist/src/bin.cjs');
const RNG = join(import.meta.dirname, 'fixtures', 'virt-inspector.rng');
const RPM_GUESTS = new Set<PhonyGuest>(['fedora', 'fedora-md', 'fedora-btrfs', 'fedora-luks-on-lvm', 'fedora-lvm-on-luks']);
const CI_SHARE = new Set<PhonyGuest>(['debian', 'archlinux', 'coreos', 'windows', 'fedora-md', 'fedora-luks-on-lvm', 'fedora-lvm-on-luks']);
const GUESTS = PHONY_GUESTS.filter((g) => process.env.APPLIANCE_PHONY_GUESTS === 'all' || CI_SHARE.has(g));

let dir: string;
/** Each guest's keys: ours (`--key`) and virt-inspector's (`--key`), by container UUID. */
const keys = new Map<PhonyGuest, { ours: string[]; theirs: string[] }>();
const theirs = new Map<PhonyGuest, Promise<string>>();

beforeAll(async () => {
  dir = await phonyGuests(GUESTS);
  // The containers' UUIDs, to give each its key as virt-inspector 1.48 takes them (by device or UUID).
  await using img = await inspect(imagesOf(dir, 'fedora-luks-on-lvm'), { cacheDir: SHARED_CACHE });
  const byLv = new Map(img.volumes().luks.map((l) => [l.on, l.uuid]));
  const luksOnLvm = Object.entries(LUKS_ON_LVM_KEYS).map(([lv, key]) => ({ uuid: byLv.get(`Volume-Group/${lv}`)!, key }));
  keys.set('fedora-luks-on-lvm', { ours: luksOnLvm.map((k) => `${k.uuid}=${k.key}`), theirs: luksOnLvm.map((k) => `${k.uuid}:key:${k.key}`) });
  keys.set('fedora-lvm-on-luks', { ours: [LVM_ON_LUKS_KEY], theirs: [`/dev/sda2:key:${LVM_ON_LUKS_KEY}`] });
  const runs = limited(
    GUESTS.map((g) => async () => {
      const args = ['--format=raw', ...imagesOf(dir, g).flatMap((i) => ['-a', i]), ...(keys.get(g)?.theirs ?? []).flatMap((k) => ['--key', k])];
      return (await virt('virt-inspector', [...(RPM_GUESTS.has(g) ? ['--no-applications'] : []), ...args])).stdout.toString('utf8');
    }),
  );
  GUESTS.forEach((g, i) => {
    runs[i]!.catch(() => {});
    theirs.set(g, runs[i]!);
  });
}, 1_200_000);

/** Our XML, by the CLI; asynchronously: beside the virt-inspector runs a call can take many seconds. */
async function ours(g: PhonyGuest): Promise<{ xml: string }> {
  const args = [CLI, 'inspect', '--xml', '--cache-dir', SHARED_CACHE, ...(keys.get(g)?.ours ?? []).flatMap((k) => ['--key', k]), ...imagesOf(dir, g)];
  const r = await run(process.execPath, args);
  expect(r.status, r.stderr).toBe(0);
  return { xml: r.stdout };
}

/** `xml` with its md arrays named as in `like`, each found by the UUID of the filesystem it holds. */
function mdNamedAs(xml: string, like: string): string {
  const arrays = (doc: string) => new Map([...doc.matchAll(/<filesystem dev="(\/dev\/md\d+)">[^]*?<uuid>([^<]+)<\/uuid>/g)].map((m) => [m[2]!, m[1]!]));
  const mine = arrays(like);
  const rename = new Map([...arrays(xml)].map(([uuid, dev]) => [dev, mine.get(uuid) ?? dev]));
  return xml.replace(/\/dev\/md\d+/g, (dev) => rename.get(dev) ?? dev);
}

const APPLICATIONS = /\n {4}<applications>[^]*?<\/applications>|\n {4}<applications\/>/;
const application = (xml: string) =>
  [...xml.matchAll(/<application>([^]*?)<\/application>/g)].map((m) =>
    Object.fromEntries([...m[1]!.matchAll(/<(\w+)>([^<]*)<\/\1>/g)].map((f) => [f[1], f[2]])),
  );

describe("libguestfs's phony guests: ours and virt-inspector's XML", () => {
  for (const g of GUESTS) {
    it(
      g,
      async () => {
        const mine = await ours(g);
        const xml = await theirs.get(g)!;
        expect(spawnSync('xmllint', ['--noout', '--relaxng', RNG, '-'], { input: mine.xml, encoding: 'utf8' }).stderr).toMatch(/validates/);
        let compared = mine.xml;
        if (g === 'coreos') {
          expect(compared).toContain('<build_id>2016-03-23-0120</build_id>');
          compared = compared.replace(/\n *<build_id>[^<]*<\/build_id>/, '');
        }
        if (RPM_GUESTS.has(g)) {
          const rpm = JSON.parse(readFileSync(rpmListOf(dir, g), 'utf8')) as RpmPackage[];
          expect(application(compared)).toEqual(
            rpm
              .map((p) => ({
                name: p.name,
                ...(p.epoch ? { epoch: String(p.epoch) } : {}),
                version: p.version,
                release: p.release,
                arch: p.arch,
                ...(p.url ? { url: p.url } : {}),
                ...(p.summary ? { summary: p.summary } : {}),
                ...(p.description ? { description: p.description } : {}),
              }))
              .sort((a, b) => (a.name < b.name ? -1 : 1)),
          );
          compared = compared.replace(APPLICATIONS, '');
        }
        expect(compared).toBe(g === 'fedora-md' ? mdNamedAs(xml, compared) : xml);
      },
      900_000,
    );
  }
});
