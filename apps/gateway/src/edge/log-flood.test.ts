// A flood of refused clients costs a few log lines, not one each; the metrics count every one.
// In a file of its own: the cap on such lines is per process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki } from '@tenantgate/testing';
import { CLIENT_LINES_PER_SECOND } from '../telemetry/index.ts';
import { connectRaw, errorFields, readUntilClose, startTestFront, startupMessage } from '../testing/front-door.ts';

const FLOOD = 120;

test('plaintext startups refused in a burst: every one counted, at most the per-second lines logged, the count of the rest logged after', async (t) => {
  const pki = await createTestPki();
  const front = await startTestFront(t, pki);
  for (let i = 0; i < FLOOD; i++) {
    const socket = await connectRaw(front.port);
    const received = readUntilClose(socket);
    socket.write(startupMessage({ user: 'alice' }));
    assert.equal(errorFields((await received).bytes).code, '28000');
  }
  const refused = await front.metrics.registry.getSingleMetric('tenantgate_connections_total')?.get();
  const count = refused?.values.find((v) => v.labels.outcome === 'refused')?.value;
  assert.equal(count, FLOOD);
  const lines = front.logs.filter((line) => line.msg === 'connection refused');
  assert.ok(lines.length < FLOOD, `${lines.length} lines for ${FLOOD} refusals`);
  const dropped = (list: typeof lines) => list.reduce((sum, line) => sum + (typeof line.dropped === 'number' ? line.dropped : 0), 0);
  // A second later, the next refusal's line carries the count of those not written.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const socket = await connectRaw(front.port);
  const received = readUntilClose(socket);
  socket.write(startupMessage({ user: 'alice' }));
  await received;
  const after = front.logs.filter((line) => line.msg === 'connection refused');
  assert.equal(after.length + dropped(after), FLOOD + 1, 'every refusal is a line or counted in one');
  assert.ok(lines.length >= CLIENT_LINES_PER_SECOND, 'the first lines of a second are written');
});
