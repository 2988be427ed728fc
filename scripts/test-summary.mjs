// Prints the plain "N passed, N failed" line CI reads, from vitest's JSON report.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
// Checks .ci/run ran besides the suite (the formatter): `--also-failed=NAME`, one failure each.
const alsoFailed = process.argv.slice(3).flatMap((a) => (a.startsWith('--also-failed=') ? [a.slice('--also-failed='.length)] : []));
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.log(`0 passed, 1 failed`);
  console.error(`test-summary: no vitest report at ${file}: ${err.message}`);
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// A test file that fails outside its tests (it does not load, a beforeAll throws: its tests
// are then skipped, not failed) counts as one failure.
const brokenSuites = (report.testResults ?? []).filter((r) => r.status === 'failed' && !(r.assertionResults ?? []).some((a) => a.status === 'failed')).length;
const failed = (report.numFailedTests ?? 0) + brokenSuites + alsoFailed.length;
for (const name of alsoFailed) console.log(`failed outside the suite: ${name}`);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
// The last line stays exactly `N passed, N failed`; skipped tests (KVM-only ones on a host without KVM) are said before it.
if (skipped) console.log(`${skipped} skipped`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
