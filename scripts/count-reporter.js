// A node:test reporter that emits one JSON object with pass/fail/skip counts of
// leaf tests, so scripts/test.js can print one closing line for all tiers.
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    // Suites (describe) report too; count leaf tests only.
    if (d.details?.type === 'suite') continue;
    if (d.skip || d.todo) counts.skipped++;
    else if (event.type === 'test:pass') counts.passed++;
    else counts.failed++;
  }
  yield JSON.stringify(counts);
}
