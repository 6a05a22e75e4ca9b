// Benchmark runner: runs every benchmark (or those whose id is given on the command line) and
// prints one markdown table each. To add one, export an async function returning rows of
// plain values and list it in `benchmarks`.
//
//   npm run bench [-- wire-decode ...]
import { benchWireDecode } from './wire-decode.ts';

export type BenchRow = Record<string, string | number>;

export interface Benchmark {
  id: string;
  title: string;
  run: () => Promise<BenchRow[]>;
}

export const benchmarks: Benchmark[] = [
  { id: 'wire-decode', title: 'libs/wire framing of a 100 MB server stream', run: benchWireDecode },
];

/** Columns are the keys of the rows, in first-seen order; numbers are right-aligned. */
export function markdownTable(rows: readonly BenchRow[]): string {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const numeric = columns.map((column) => rows.every((row) => typeof (row[column] ?? 0) === 'number'));
  const cell = (value: string | number | undefined): string =>
    typeof value === 'number' ? value.toLocaleString('en-US') : (value ?? '');
  const lines = [
    `| ${columns.join(' | ')} |`,
    `| ${numeric.map((isNumber) => (isNumber ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((row) => `| ${columns.map((column) => cell(row[column])).join(' | ')} |`),
  ];
  return lines.join('\n');
}

async function main(selected: readonly string[]): Promise<void> {
  const chosen = selected.length === 0 ? benchmarks : benchmarks.filter((bench) => selected.includes(bench.id));
  if (chosen.length === 0) throw new Error(`unknown benchmark; known: ${benchmarks.map((b) => b.id).join(', ')}`);
  for (const bench of chosen) {
    const rows = await bench.run();
    console.log(`## ${bench.title}\n\n${markdownTable(rows)}\n`);
  }
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
