import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createLogger, loggerOptions, REDACTED } from './logger.ts';

function collect(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

test('JSON lines carry level names and ISO times', () => {
  const out = collect();
  createLogger({ level: 'info', destination: out.stream }).warn('careful');
  assert.equal(out.lines[0].level, 'warn');
  assert.match(String(out.lines[0].time), /^\d{4}-\d\d-\d\dT/);
});

test('one redaction list covers what either app logs', () => {
  const out = collect();
  // As Fastify builds its logger from the options (the control plane).
  const log = pino(loggerOptions('info'), out.stream);
  log.info({ req: { headers: { authorization: 'Bearer t' } }, body: { password: 'p' }, route: { roles: [{ scramSecret: 's' }] } }, 'x');
  log.info({ config: { tenantSource: { token: 'tok' } } }, 'y');
  assert.deepEqual(out.lines[0].req, { headers: { authorization: REDACTED } });
  assert.deepEqual(out.lines[0].body, { password: REDACTED });
  assert.deepEqual(out.lines[0].route, { roles: [{ scramSecret: REDACTED }] });
  assert.deepEqual(out.lines[1].config, { tenantSource: { token: REDACTED } });
});
