import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The files that take minutes (libguestfs launches under TCG, images built by guestfish),
 * longest first: started at once, they run beside the many short files instead of after
 * them. A fresh clone has no timings for vitest to order by (it falls back to file size).
 */
const LONG = ['phony-guests', 'inspect', 'inspect-volumes', 'rpm-large', 'inspect-xml', 'snapshot', 'vm', 'concurrency', 'windows', 'qemu-boot'];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = LONG.findIndex((name) => f.moduleId.endsWith(`/test/${name}.test.ts`));
      return i < 0 ? LONG.length : i;
    };
    return (await super.sort(files))
      .map((f, i) => ({ f, i }))
      .sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i)
      .map((x) => x.f);
  }
}

// Boot tests run real qemu under TCG, each guest taking a whole core: two workers
// match the 2-core machines this suite runs on.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 180_000,
    setupFiles: ['test/helpers/stall-watch.ts'],
    sequence: { sequencer: LongestFirst },
  },
});
