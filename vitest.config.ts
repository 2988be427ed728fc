import { defineConfig } from 'vitest/config';

// Boot tests run real qemu under TCG, each guest taking a whole core: two workers
// match the 2-core machines this suite runs on.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
