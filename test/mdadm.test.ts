// mdadm.conf's ARRAY lines as libguestfs maps fstab's /dev/mdN with them (os/mdadm.ts);
// the whole path (fstab → mdadm.conf → the assembled array) is in phony-guests.test.ts.
import { describe, expect, it } from 'vitest';
import { mdadmArrays, mdUuid } from '../src/inspect/os/mdadm.js';

const files = (map: Record<string, string>) => (path: string) => (map[path] === undefined ? undefined : Buffer.from(map[path]!));

describe('mdadm.conf', () => {
  it('maps each ARRAY device name to its UUID, in any of the forms mdadm writes, continuation lines joined', () => {
    const conf = [
      'MAILADDR root',
      'AUTO +imsm +1.x -all',
      'ARRAY /dev/md0 level=raid1 num-devices=2 UUID=27d9ea50:78cbdec5:cf4daf0f:70d0e712',
      'array /dev/md1 metadata=1.2 name=host:root',
      '   uuid=14F9BA55-F349-AE17-0D79-1EF61683C12A',
      '# ARRAY /dev/md2 UUID=00000000:00000000:00000000:00000000',
      'ARRAY /dev/md3 UUID=not-a-uuid',
      'ARRAY <ignore> UUID=11111111.22222222.33333333.44444444',
      'ARRAY /dev/md4 level=raid1',
    ].join('\n');
    expect(mdadmArrays(files({ '/etc/mdadm.conf': conf }))).toEqual(
      new Map([
        ['/dev/md0', '27d9ea5078cbdec5cf4daf0f70d0e712'],
        ['/dev/md1', '14f9ba55f349ae170d791ef61683c12a'],
        ['<ignore>', '11111111222222223333333344444444'],
      ]),
    );
  });

  it("reads Debian's /etc/mdadm/mdadm.conf too; an md UUID is 32 hex digits, separators ignored", () => {
    expect(mdadmArrays(files({ '/etc/mdadm/mdadm.conf': 'ARRAY /dev/md/boot UUID=a:b\nARRAY /dev/md9 UUID=0123456789abcdef0123456789ABCDEF\n' }))).toEqual(
      new Map([['/dev/md9', '0123456789abcdef0123456789abcdef']]),
    );
    expect(mdUuid('27d9ea50-78cb-dec5-cf4d-af0f70d0e712')).toBe('27d9ea5078cbdec5cf4daf0f70d0e712');
    expect(mdUuid('27d9ea50-78cb-dec5-cf4d-af0f70d0e71')).toBeUndefined();
    expect(mdUuid('27d9ea50/78cb-dec5-cf4d-af0f70d0e712')).toBeUndefined();
    expect(mdadmArrays(files({}))).toEqual(new Map());
  });
});
