// Runs test files with node:test in the order given, two (TEST_CONCURRENCY) at a time.
// `node --test FILE…` sorts its files by name whatever the order given, so test.sh's
// longest-first list was never used; run() keeps the order.
// Started as `node --import tsx scripts/run-tests.mjs FILE…`: each file's process inherits
// --import tsx. Exit 1 when any test fails, as `node --test` does.
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const files = process.argv.slice(2).map((f) => path.resolve(f));
if (files.length === 0) {
  console.error('usage: node --import tsx scripts/run-tests.mjs FILE…');
  process.exit(2);
}
const stream = run({ files, concurrency: Number(process.env.TEST_CONCURRENCY ?? 2) });
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(spec).pipe(process.stdout);
