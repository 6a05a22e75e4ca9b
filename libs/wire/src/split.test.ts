// Every split point: a stream cut anywhere (once, twice, or into single bytes) must give the
// same frames as the stream in one piece, as a socket may cut it anywhere.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FrameDecoder, FramePhase } from './frame-decoder.ts';
import { MessageTracker } from './message-tracker.ts';
import {
  buildNoticeResponse,
  serializeAuthenticationSASL,
  serializeBackendKeyData,
  serializeParameterStatus,
  serializePasswordMessage,
} from './serializer.ts';
import { serializeCancelRequest, serializeGSSENCRequest, serializeSSLRequest, serializeStartupMessage } from './startup.ts';
import {
  bindComplete,
  chunksOf,
  commandComplete,
  dataRow,
  decodeChunks,
  emptyQueryResponse,
  parseComplete,
  query,
  readyForQuery,
  rowDescription,
  splitAt,
} from './testing/builders.ts';

const backendMessages = [
  serializeAuthenticationSASL(['SCRAM-SHA-256']),
  serializeParameterStatus('server_version', '17.2'),
  serializeBackendKeyData(1234, Buffer.alloc(32, 9), 2),
  readyForQuery('I'),
  parseComplete(),
  bindComplete(),
  rowDescription([{ name: 'id', typeOid: 23, typeSize: 4 }, { name: 'note' }]),
  dataRow(['1', null]),
  dataRow(['2', 'a somewhat longer text value']),
  commandComplete('SELECT 2'),
  buildNoticeResponse({ severity: 'NOTICE', code: '00000', message: 'n' }),
  emptyQueryResponse(),
  readyForQuery('T'),
];

const startupPackets = [
  serializeGSSENCRequest(),
  serializeSSLRequest(),
  serializeCancelRequest(77, Buffer.alloc(4, 1)),
  serializeStartupMessage({
    parameters: new Map([
      ['user', 'alice'],
      ['database', 'app'],
    ]),
  }),
];

function decode(chunks: Buffer[], phase: FramePhase): Buffer[] {
  return decodeChunks(new FrameDecoder({ phase }), chunks);
}

/** Calls `check` with the stream cut at every i, and at every i < j when `pairs` is set. */
function everySplit(stream: Buffer, check: (chunks: Buffer[]) => void, pairs = false): void {
  for (let i = 0; i <= stream.length; i++) {
    check(splitAt(stream, i));
    if (!pairs) continue;
    for (let j = i; j <= stream.length; j++) check(splitAt(stream, i, j));
  }
  check(chunksOf(stream, 1));
}

describe('FrameDecoder at every split point', () => {
  test('each backend message alone', () => {
    for (const message of backendMessages) {
      everySplit(message, (chunks) => assert.deepEqual(decode(chunks, FramePhase.Normal), [message]), true);
    }
  });

  test('back-to-back backend messages', () => {
    const stream = Buffer.concat(backendMessages);
    everySplit(stream, (chunks) => assert.deepEqual(decode(chunks, FramePhase.Normal), backendMessages), true);
  });

  test('each startup packet alone, and back to back', () => {
    for (const packet of startupPackets) {
      everySplit(packet, (chunks) => assert.deepEqual(decode(chunks, FramePhase.Startup), [packet]), true);
    }
    const stream = Buffer.concat(startupPackets);
    everySplit(stream, (chunks) => assert.deepEqual(decode(chunks, FramePhase.Startup), startupPackets));
  });

  test('a StartupMessage then normal messages, switching phase after the first frame', () => {
    const [startup] = startupPackets.slice(-1);
    const rest = [serializePasswordMessage('secret'), query('select 1')];
    const stream = Buffer.concat([startup!, ...rest]);
    everySplit(
      stream,
      (chunks) => {
        const decoder = new FrameDecoder({ phase: FramePhase.Startup });
        const frames: Buffer[] = [];
        for (const chunk of chunks) {
          decoder.push(chunk);
          for (let frame = decoder.next(); frame !== null; frame = decoder.next()) {
            frames.push(frame);
            if (decoder.phase === FramePhase.Startup) decoder.setPhase(FramePhase.Normal);
          }
        }
        assert.deepEqual(frames, [startup, ...rest]);
      },
      true,
    );
  });
});

describe('MessageTracker at every split point', () => {
  const stream = Buffer.concat(backendMessages);
  const ends = backendMessages.map((_, i) => Buffer.concat(backendMessages.slice(0, i + 1)).length);

  function track(chunks: Buffer[]): { tracker: MessageTracker; boundaries: number[] } {
    const tracker = new MessageTracker();
    const boundaries: number[] = [];
    let base = 0;
    for (const chunk of chunks) {
      tracker.push(chunk);
      if (tracker.lastBoundary !== -1) boundaries.push(base + tracker.lastBoundary);
      base += chunk.length;
    }
    return { tracker, boundaries };
  }

  test('counts the same messages and ends on the same status', () => {
    everySplit(
      stream,
      (chunks) => {
        const { tracker, boundaries } = track(chunks);
        assert.equal(tracker.messageCount, backendMessages.length);
        assert.equal(tracker.transactionStatus, 'T');
        assert.equal(tracker.atBoundary, true);
        for (const boundary of boundaries) assert.ok(ends.includes(boundary), `boundary ${boundary}`);
      },
      true,
    );
  });

  test('in 1-byte chunks it sees every boundary', () => {
    assert.deepEqual(track(chunksOf(stream, 1)).boundaries, ends);
  });
});
