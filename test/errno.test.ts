// The guest's errnos by name: every number Linux x86-64 defines (the host's kernel headers,
// asm-generic/errno*.h, are the oracle) has its name, including those Node's own table
// leaves out (EUCLEAN, what a corrupt ext4 or xfs gives most; ENOKEY…).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeErrno, errnoCode } from '../src/errno.js';

const headers = ['/usr/include/asm-generic/errno-base.h', '/usr/include/asm-generic/errno.h'];
const defined = headers.flatMap((h) => [...readFileSync(h, 'utf8').matchAll(/^#define\s+(E[A-Z0-9]+)\s+(\d+)\b/gm)]).map((m) => [m[1]!, Number(m[2])] as const);

describe('errno names', () => {
  it('every errno the kernel headers define is known by its name', () => {
    expect(defined.length).toBeGreaterThan(120);
    // 95 has two names (libc's ENOTSUP is EOPNOTSUPP); Node says the first.
    const alias: Record<string, string> = { EOPNOTSUPP: 'ENOTSUP' };
    for (const [name, num] of defined) expect([num, errnoCode(num)]).toEqual([num, alias[name] ?? name]);
  });

  it('said as CODE: meaning, in an image’s terms where a filesystem gives it', () => {
    expect(describeErrno(117)).toBe('EUCLEAN: structure needs cleaning (the filesystem is corrupt)');
    expect(describeErrno(126)).toMatch(/^ENOKEY: required key not available/);
    expect(describeErrno(74)).toMatch(/^EBADMSG: /);
    expect(describeErrno(4095)).toBe('errno 4095 (unknown to this host)');
  });
});
