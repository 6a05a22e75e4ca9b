// node:test reporter that prints one closing line, `N passed, N failed[, N skipped]`, counting
// tests (not suites). A file that fails to load counts as a failed test.
import type { TestEvent } from 'node:test/reporters';

export default async function* summary(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for await (const event of source) {
    if (event.type === 'test:pass' && event.data.details.type !== 'suite') {
      if (event.data.skip !== undefined || event.data.todo !== undefined) skipped++;
      else passed++;
    } else if (event.type === 'test:fail' && event.data.details.type !== 'suite') {
      // A failing `todo` test does not fail node's run; count it with the skipped ones.
      if (event.data.todo !== undefined) skipped++;
      else failed++;
    }
  }
  yield `\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`;
}
