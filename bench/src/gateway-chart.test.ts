// The SVG chart of a gateway run: a bar per path and figure, the figure written beside it, and
// the target's verdict under each workload's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparisonChart, wrap } from './gateway-chart.ts';
import { optionsFromEnvironment, type GatewayBenchResult } from './gateway.ts';

test('one bar per path with a figure, scaled within its workload, and each verdict', () => {
  const result: GatewayBenchResult = {
    options: { ...optionsFromEnvironment({}), workloads: ['select-tps', 'idle-rss'] },
    figures: new Map([
      ['select-tps', { direct: 1000, PgBouncer: 800, gateway: 850 }],
      ['idle-rss', { PgBouncer: 10, gateway: new Error('no process') }],
    ]),
    notes: [],
    conditions: '',
  };
  const svg = comparisonChart(result, 'A <run>');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /A &lt;run&gt;/);
  const bars = [...svg.matchAll(/<rect x="430" y="\d+" width="([\d.]+)" height="13"/g)].map((match) => Number(match[1]));
  assert.deepEqual(bars, [400, 320, 340, 400], 'three bars for select-tps scaled to its largest, one for idle-rss');
  assert.match(svg, />1,000</);
  assert.match(svg, /target ≥ 1\.1 × PgBouncer: not met/);
  assert.match(svg, /target ≤ 80 MiB: unknown/);
});

test('a long workload name wraps at spaces', () => {
  assert.deepEqual(wrap('one two three four', 9), ['one two', 'three', 'four']);
  assert.deepEqual(wrap('short', 68), ['short']);
});
