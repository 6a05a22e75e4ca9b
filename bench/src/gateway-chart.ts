// The gateway comparison as an SVG bar chart (BENCH_CHART=<file>): per workload, one bar per path,
// scaled to the largest figure of that workload (the units differ from row to row), the figure
// written beside each bar, and whether the gateway met the target.
import type { GatewayBenchResult } from './gateway.ts';
import { comparisonRows } from './gateway-report.ts';
import { PATHS } from './gateway-stack.ts';

const COLORS: Record<(typeof PATHS)[number], string> = {
  direct: '#8c8c8c',
  PgBouncer: '#4c78a8',
  relay: '#b8b8b8',
  gateway: '#f58518',
};
const WIDTH = 960;
const LABEL_WIDTH = 430;
const BAR_AREA = 400;
const BAR_HEIGHT = 13;
const ROW_GAP = 14;
const LINE_HEIGHT = 14;
/** Characters of an 11 px label line that fit left of the bars. */
const LABEL_CHARACTERS = 68;

export function comparisonChart(result: GatewayBenchResult, title: string): string {
  const rows = comparisonRows(result);
  const parts: string[] = [];
  let y = 56;
  for (const row of rows) {
    const figures = PATHS.map((path) => [path, row[path]] as const).filter(
      (entry): entry is [(typeof PATHS)[number], number] => typeof entry[1] === 'number',
    );
    const largest = Math.max(...figures.map(([, value]) => value), Number.MIN_VALUE);
    // The workload's name on as many lines as it needs beside the bars, then the verdict.
    const lines = wrap(String(row.workload).replaceAll('`', ''), LABEL_CHARACTERS);
    const labelHeight = (lines.length + 1) * LINE_HEIGHT;
    const height = Math.max(Math.max(1, figures.length) * (BAR_HEIGHT + 3), labelHeight);
    const labelTop = y + (height - labelHeight) / 2 + LINE_HEIGHT - 3;
    for (const [index, line] of lines.entries()) parts.push(text(8, labelTop + index * LINE_HEIGHT, line, 11));
    parts.push(
      text(
        8,
        labelTop + lines.length * LINE_HEIGHT,
        row.met === '—'
          ? 'no target: reported'
          : `target ${row.target}: ${row.met === 'yes' ? 'met' : row.met === 'no' ? 'not met' : 'unknown'}`,
        10,
        '#555',
      ),
    );
    for (const [index, [path, value]] of figures.entries()) {
      const top = y + index * (BAR_HEIGHT + 3);
      const width = Math.max(1, (value / largest) * BAR_AREA);
      parts.push(`<rect x="${LABEL_WIDTH}" y="${top}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${COLORS[path]}"/>`);
      parts.push(text(LABEL_WIDTH + width + 4, top + BAR_HEIGHT - 2, value.toLocaleString('en-US'), 10));
    }
    y += height + ROW_GAP;
    parts.push(`<line x1="8" x2="${WIDTH - 8}" y1="${y - ROW_GAP / 2}" y2="${y - ROW_GAP / 2}" stroke="#e0e0e0"/>`);
  }
  const legend = PATHS.map(
    (path, index) =>
      `<rect x="${LABEL_WIDTH + index * 110}" y="30" width="12" height="12" fill="${COLORS[path]}"/>${text(LABEL_WIDTH + index * 110 + 16, 40, path, 11)}`,
  ).join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y + 8}" viewBox="0 0 ${WIDTH} ${y + 8}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    text(8, 20, title, 14),
    legend,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** Words on lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(words: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of words.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

function text(x: number, y: number, content: string, size: number, fill = '#222'): string {
  const escaped = content.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  return `<text x="${x}" y="${y}" font-size="${size}" fill="${fill}">${escaped}</text>`;
}
