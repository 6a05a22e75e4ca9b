import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProtocolError } from './errors.ts';
import { MessageTracker } from './message-tracker.ts';
import { BackendMessageType } from './messages.ts';
import { buildNoticeResponse } from './serializer.ts';
import { commandComplete, copyData, dataRow, readyForQuery, selectResult } from './testing/builders.ts';

const fields = [{ name: 'id' }, { name: 'name' }];

describe('MessageTracker', () => {
  test('follows a query result to its ReadyForQuery', () => {
    const tracker = new MessageTracker();
    const stream = selectResult(
      fields,
      [
        ['1', 'a'],
        ['2', null],
      ],
      'T',
    );
    tracker.push(stream);
    assert.equal(tracker.messageCount, 5);
    assert.equal(tracker.atBoundary, true);
    assert.equal(tracker.lastMessageType, BackendMessageType.ReadyForQuery);
    assert.equal(tracker.transactionStatus, 'T');
    assert.equal(tracker.lastBoundary, stream.length);
    assert.equal(tracker.idle, false, 'inside a transaction is not idle');
  });

  test('is idle only at a boundary right after ReadyForQuery I', () => {
    const tracker = new MessageTracker();
    assert.equal(tracker.idle, false);
    assert.equal(tracker.transactionStatus, null);
    tracker.push(readyForQuery('I'));
    assert.equal(tracker.idle, true);
    const notice = buildNoticeResponse({ severity: 'NOTICE', code: '00000', message: 'hello' });
    tracker.push(notice.subarray(0, 3));
    assert.equal(tracker.idle, false);
    assert.equal(tracker.atBoundary, false);
    assert.equal(tracker.lastBoundary, -1);
    tracker.push(notice.subarray(3));
    assert.equal(tracker.atBoundary, true);
    assert.equal(tracker.idle, false, 'an asynchronous notice after ReadyForQuery');
    assert.equal(tracker.transactionStatus, 'I');
  });

  test('reads a ReadyForQuery status that arrives in the next chunk', () => {
    const tracker = new MessageTracker();
    const rfq = readyForQuery('E');
    tracker.push(rfq.subarray(0, 5));
    assert.equal(tracker.transactionStatus, null);
    tracker.push(rfq.subarray(5));
    assert.equal(tracker.transactionStatus, 'E');
    assert.equal(tracker.lastBoundary, 1);
  });

  test('lastBoundary is the end of the last whole message in the chunk', () => {
    const tracker = new MessageTracker();
    const first = dataRow(['x']);
    const second = commandComplete('SELECT 1');
    tracker.push(Buffer.concat([first, second.subarray(0, 4)]));
    assert.equal(tracker.lastBoundary, first.length);
  });

  test('skips large bodies without looking at them', () => {
    const tracker = new MessageTracker();
    const big = copyData(Buffer.alloc(1_000_000, 0x5a));
    for (let at = 0; at < big.length; at += 65_536) tracker.push(big.subarray(at, at + 65_536));
    assert.equal(tracker.messageCount, 1);
    assert.equal(tracker.transactionStatus, null, 'Z bytes inside a body are data');
  });

  test('refuses a type no server sends (the framing was lost)', () => {
    assert.throws(() => new MessageTracker().push(Buffer.from([0x51, 0, 0, 0, 4])), ProtocolError);
  });

  test('refuses bad lengths', () => {
    assert.throws(() => new MessageTracker().push(Buffer.from([0x44, 0, 0, 0, 3])), ProtocolError);
    assert.throws(() => new MessageTracker().push(Buffer.from([0x44, 0xff, 0xff, 0xff, 0xff])), ProtocolError);
    const tracker = new MessageTracker({ maxMessageLength: 100 });
    assert.throws(() => tracker.push(Buffer.from([0x44, 0, 0, 0, 101])), ProtocolError);
  });

  test('refuses a malformed ReadyForQuery', () => {
    assert.throws(() => new MessageTracker().push(Buffer.from([0x5a, 0, 0, 0, 6, 0x49, 0])), ProtocolError);
    assert.throws(() => new MessageTracker().push(Buffer.from([0x5a, 0, 0, 0, 5, 0x58])), ProtocolError);
  });

  test('refuses nonsensical limits', () => {
    assert.throws(() => new MessageTracker({ maxMessageLength: 0 }), RangeError);
  });
});
