// A logger whose lines are kept for assertions instead of cluttering the test output. Imported by tests only.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../telemetry/index.ts';

export function quietLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger: createLogger({ level: 'info', destination }), lines };
}
