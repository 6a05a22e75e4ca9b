import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_PLANE_HELP } from './control-plane-variables.ts';
import { GATEWAY_HELP } from './gateway-variables.ts';
import { helpText, type HelpPage } from './help.ts';

/** The text of a page with every variable's three lines replaced by one marker. */
function skeleton(page: HelpPage): string {
  const names = [...page.variables.map((v) => v.name), ...(page.notes ?? []).map((n) => n.name)];
  const lines = helpText(page).split('\n');
  const shape: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const name = names.find((n) => lines[i].startsWith(`  ${n}  (`));
    if (name === undefined) {
      shape.push(lines[i] === '' ? '' : 'text');
      continue;
    }
    assert.match(lines[i + 1], /^ {6}\S/, `${name}: the description`);
    assert.match(lines[i + 2], /^ {6}Expects \S.*\.$/, `${name}: the values accepted`);
    shape.push('variable');
    i += 2;
  }
  // Runs of text lines, and of entries, count as one.
  return shape
    .join('\n')
    .replace(/(text\n)+/g, 'text\n')
    .replace(/(variable\n\n)+/g, 'variables\n\n');
}

test('both apps have the same --help layout', () => {
  assert.deepEqual(skeleton(GATEWAY_HELP), skeleton(CONTROL_PLANE_HELP));
});

test('an entry says required, its default, or that it has none, then what it does and accepts', () => {
  const text = helpText({
    title: 't',
    usage: 'u',
    intro: [],
    variables: [
      { name: 'A', schema: { type: 'string' }, required: true, expects: 'anything', description: 'Needed.' },
      { name: 'B', schema: { type: 'integer', default: 3 }, expects: 'an integer', description: 'Counted.' },
      { name: 'C', schema: { type: 'string' }, expects: 'a path', description: 'Optional.' },
    ],
  });
  assert.match(text, /^ {2}A {2}\(required\)\n {6}Needed\.\n {6}Expects anything\.$/m);
  assert.match(text, /^ {2}B {2}\(default 3\)\n {6}Counted\.\n {6}Expects an integer\.$/m);
  assert.match(text, /^ {2}C {2}\(no default\)\n {6}Optional\.\n {6}Expects a path\.$/m);
});
