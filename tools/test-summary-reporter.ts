// node:test reporter that counts tests (not suites) for the closing line `N passed, N failed[, N
// skipped]`. A file that fails to load counts as a failed test. Under tools/run-tests.ts the
// counts go to the file named by TG_TEST_SUMMARY_FILE, written synchronously as they change, and
// run-tests.ts prints the line: with --test-force-exit the runner may exit before a reporter's
// last output is written. Used on its own, the reporter prints the line when the run ends.
import { writeFileSync } from 'node:fs';
import type { TestEvent } from 'node:test/reporters';

export interface TestCounts {
  passed: number;
  failed: number;
  skipped: number;
}

export function summaryLine({ passed, failed, skipped }: TestCounts): string {
  return `\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`;
}

export default async function* summary(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const counts: TestCounts = { passed: 0, failed: 0, skipped: 0 };
  const file = process.env.TG_TEST_SUMMARY_FILE;
  for await (const event of source) {
    if (!count(counts, event)) continue;
    if (file !== undefined) writeFileSync(file, JSON.stringify(counts));
  }
  if (file === undefined) yield summaryLine(counts);
}

/** Adds the event to the counts; false when it was not a test's result. */
function count(counts: TestCounts, event: TestEvent): boolean {
  if (event.type === 'test:pass' && event.data.details.type !== 'suite') {
    if (event.data.skip !== undefined || event.data.todo !== undefined) counts.skipped++;
    else counts.passed++;
    return true;
  }
  if (event.type === 'test:fail' && event.data.details.type !== 'suite') {
    // A failing `todo` test does not fail node's run; count it with the skipped ones.
    if (event.data.todo !== undefined) counts.skipped++;
    else counts.failed++;
    return true;
  }
  return false;
}
