import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A cache folder the hostile tests share: the default appliance is built, and each
 * shape's snapshot saved, once for all of them (the cache is safe for concurrent use).
 * Tests that assert on the cache's own behaviour use a fresh folder instead.
 */
export const SHARED_CACHE = join(tmpdir(), `appliance-test-cache-${process.getuid?.() ?? 'user'}`);
