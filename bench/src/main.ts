// Benchmark runner: runs every benchmark (or those whose id is given on the command line) and
// prints one markdown table each. To add one, export an async function returning rows of
// plain values (or rows with notes to print under them) and list it in `benchmarks`.
//
//   npm run bench [-- wire-decode gateway ...]
import { writeFile } from 'node:fs/promises';
import { comparisonChart } from './gateway-chart.ts';
import { optionsFromEnvironment, runGatewayBench } from './gateway.ts';
import { COMPARISON_COLUMNS, comparisonRows, reportNotes } from './gateway-report.ts';
import { benchWireDecode } from './wire-decode.ts';

export type BenchRow = Record<string, string | number>;

/** Rows and the markdown to print under their table (how to repeat the run, its conditions). */
export interface BenchReport {
  rows: BenchRow[];
  notes: string;
  /** Column order, when first-seen order is not it (a column only later rows have). */
  columns?: string[];
}

export interface Benchmark {
  id: string;
  title: string;
  run: () => Promise<BenchRow[] | BenchReport>;
}

async function benchGateway(): Promise<BenchReport> {
  const progress = (text: string) => console.error(`bench gateway: ${text}`);
  const options = optionsFromEnvironment();
  const result = await runGatewayBench({ ...options, progress });
  const chart = process.env.BENCH_CHART;
  if (chart !== undefined && chart !== '') {
    await writeFile(
      chart,
      comparisonChart(result, `Gateway against direct PostgreSQL and PgBouncer${options.pin ? ', proxy pinned to its own CPU' : ''}`),
    );
    progress(`chart written to ${chart}`);
  }
  return { rows: comparisonRows(result), notes: reportNotes(result), columns: [...COMPARISON_COLUMNS] };
}

export const benchmarks: Benchmark[] = [
  { id: 'wire-decode', title: 'libs/wire framing of a 100 MB server stream', run: benchWireDecode },
  { id: 'gateway', title: 'Gateway against direct PostgreSQL and PgBouncer', run: benchGateway },
];

/** Columns are the keys of the rows, in first-seen order; numbers are right-aligned. */
export function markdownTable(rows: readonly BenchRow[], order?: readonly string[]): string {
  const seen = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const columns =
    order === undefined ? seen : [...order.filter((column) => seen.includes(column)), ...seen.filter((column) => !order.includes(column))];
  const numeric = columns.map((column) => rows.every((row) => typeof (row[column] ?? 0) === 'number'));
  const cell = (value: string | number | undefined): string => (typeof value === 'number' ? value.toLocaleString('en-US') : (value ?? ''));
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
    const result = await bench.run();
    const { rows, notes, columns } = Array.isArray(result) ? { rows: result, notes: '', columns: undefined } : result;
    console.log(`## ${bench.title}\n\n${markdownTable(rows, columns)}\n${notes === '' ? '' : `\n${notes}\n`}`);
  }
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
