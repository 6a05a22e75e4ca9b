// The `--help` text of both apps, in one layout: every variable with its default (or that it is
// required) on the first line, what it does on the second, the values it accepts on the third.
import type { ConfigVariable } from './variables.ts';

/** A variable read by someone else (a library, the OpenTelemetry SDK), listed but not validated. */
export interface HelpNote {
  readonly name: string;
  readonly description: string;
  readonly expects: string;
}

export interface HelpPage {
  /** `tenantgate <app>: what it is.` */
  readonly title: string;
  /** The command that runs the app. */
  readonly usage: string;
  /** Lines between the usage and the variables. */
  readonly intro: readonly string[];
  readonly variables: readonly ConfigVariable[];
  readonly notes?: readonly HelpNote[];
}

export function helpText(page: HelpPage): string {
  const lines = [page.title, '', `Usage: ${page.usage}`, '', ...page.intro];
  for (const v of page.variables) lines.push('', ...entry(v.name, setting(v), v.description, v.expects));
  for (const note of page.notes ?? []) lines.push('', ...entry(note.name, 'read by others', note.description, note.expects));
  lines.push('', 'A bad value stops start-up (exit status 2) with one line naming the variable.');
  return lines.join('\n');
}

function setting(variable: ConfigVariable): string {
  if (variable.required === true) return 'required';
  return variable.schema.default === undefined ? 'no default' : `default ${String(variable.schema.default)}`;
}

function entry(name: string, setting: string, description: string, expects: string): string[] {
  return [`  ${name}  (${setting})`, `      ${description}`, `      Expects ${expects}.`];
}

/** The same page as a Markdown table (docs/configuration.md is made of these). */
export function markdownReference(page: HelpPage): string {
  const cell = (text: string) => text.replaceAll('|', '\\|');
  const rows = page.variables.map((v) => `| \`${v.name}\` | ${cell(setting(v))} | ${cell(v.description)} | ${cell(v.expects)} |`);
  for (const note of page.notes ?? [])
    rows.push(`| \`${note.name}\` | read by others | ${cell(note.description)} | ${cell(note.expects)} |`);
  return ['| variable | setting | what it does | accepts |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
