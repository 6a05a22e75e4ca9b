import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProtocolError } from './errors.ts';
import { FrameDecoder, FramePhase, MAX_AUTH_MESSAGE_LENGTH } from './frame-decoder.ts';
import { serializePasswordMessage } from './serializer.ts';
import { serializeSSLRequest, serializeStartupMessage } from './startup.ts';
import { chunksOf, commandComplete, dataRow, decodeChunks, query, readyForQuery, splitAt } from './testing/builders.ts';

function header(type: number, length: number): Buffer {
  const buf = Buffer.alloc(5);
  buf[0] = type;
  buf.writeInt32BE(length, 1);
  return buf;
}

const startup = serializeStartupMessage({
  parameters: new Map([
    ['user', 'alice'],
    ['database', 'app'],
  ]),
});

describe('FrameDecoder', () => {
  test('returns back-to-back frames of one chunk as views of that chunk', () => {
    const stream = Buffer.concat([dataRow(['1', 'abc']), commandComplete('SELECT 1'), readyForQuery('I')]);
    const frames = decodeChunks(new FrameDecoder(), [stream]);
    assert.deepEqual(
      frames.map((f) => String.fromCharCode(f[0]!)),
      ['D', 'C', 'Z'],
    );
    assert.deepEqual(Buffer.concat(frames), stream);
    for (const frame of frames) assert.equal(frame.buffer, stream.buffer, 'a frame inside one chunk is not copied');
  });

  test('returns null until a frame is whole', () => {
    const decoder = new FrameDecoder();
    const [a, b] = splitAt(query('select 1'), 7);
    decoder.push(a!);
    assert.equal(decoder.next(), null);
    assert.equal(decoder.bufferedBytes, 7);
    decoder.push(b!);
    assert.deepEqual(decoder.next(), query('select 1'));
    assert.equal(decoder.next(), null);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('frames an empty-body message (length 4)', () => {
    const frames = decodeChunks(new FrameDecoder(), [header(0x53, 4)]);
    assert.deepEqual(frames, [header(0x53, 4)]);
  });

  test('switches from startup to normal framing between frames of one chunk', () => {
    const password = serializePasswordMessage('secret');
    const decoder = new FrameDecoder({ phase: FramePhase.Startup, maxMessageLength: MAX_AUTH_MESSAGE_LENGTH });
    decoder.push(Buffer.concat([startup, password]));
    assert.deepEqual(decoder.next(), startup);
    decoder.setPhase(FramePhase.Normal);
    assert.equal(decoder.phase, FramePhase.Normal);
    assert.deepEqual(decoder.next(), password);
    assert.equal(decoder.next(), null);
  });

  test('reports bytes after an SSLRequest (CVE-2021-23222: they must not be trusted)', () => {
    const decoder = new FrameDecoder({ phase: FramePhase.Startup });
    decoder.push(Buffer.concat([serializeSSLRequest(), startup.subarray(0, 3)]));
    assert.deepEqual(decoder.next(), serializeSSLRequest());
    assert.equal(decoder.bufferedBytes, 3);
  });

  test('refuses to change the phase inside a frame', () => {
    const decoder = new FrameDecoder({ phase: FramePhase.Startup });
    decoder.push(startup.subarray(0, 2));
    assert.equal(decoder.next(), null);
    assert.throws(() => decoder.setPhase(FramePhase.Normal), /between frames/);
  });

  test('keeps frames it handed out intact while it goes on decoding', () => {
    const messages = Array.from({ length: 200 }, (_, i) => dataRow([String(i), 'x'.repeat(i % 37)]));
    const stream = Buffer.concat(messages);
    // Copies, so no chunk shares memory with another; 7 bytes makes most frames cross chunks.
    const chunks = chunksOf(stream, 7).map((chunk) => Buffer.from(chunk));
    const frames = decodeChunks(new FrameDecoder(), chunks);
    assert.deepEqual(frames, messages);
  });

  test('keeps bytes in order when pushed before next() returned null', () => {
    const messages = [query('a'), query('bb'), query('ccc')];
    const stream = Buffer.concat(messages);
    const decoder = new FrameDecoder();
    decoder.push(stream.subarray(0, 10));
    assert.deepEqual(decoder.next(), messages[0]);
    decoder.push(stream.subarray(10));
    assert.deepEqual([decoder.next(), decoder.next(), decoder.next()], [messages[1], messages[2], null]);
  });

  test('takeBuffered hands over a partial frame and the unread rest, then is empty', () => {
    const stream = Buffer.concat([query('one'), query('two'), query('three')]);
    const decoder = new FrameDecoder();
    const [a, b] = splitAt(stream, 3, 12);
    decoder.push(a!);
    assert.equal(decoder.next(), null);
    decoder.push(b!);
    assert.deepEqual(decoder.next(), query('one'));
    decoder.push(stream.subarray(12));
    assert.deepEqual(decoder.takeBuffered(), stream.subarray(query('one').length));
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(decoder.ownedBytes, 0);
    assert.equal(decoder.next(), null);
  });
});

describe('FrameDecoder limits', () => {
  test('refuses a declared length below 4', () => {
    const decoder = new FrameDecoder();
    decoder.push(header(0x51, 3));
    assert.throws(() => decoder.next(), ProtocolError);
  });

  test('refuses a negative declared length', () => {
    const decoder = new FrameDecoder();
    decoder.push(header(0x51, -1));
    assert.throws(() => decoder.next(), ProtocolError);
  });

  test('refuses a length over the limit from its header alone, before any body', () => {
    const decoder = new FrameDecoder({ maxMessageLength: MAX_AUTH_MESSAGE_LENGTH });
    decoder.push(header(0x70, MAX_AUTH_MESSAGE_LENGTH + 1));
    assert.throws(
      () => decoder.next(),
      (error) => error instanceof ProtocolError && error.sqlState === '08P01',
    );
    assert.equal(decoder.ownedBytes, 0);
  });

  test('accepts a length exactly at the limit', () => {
    const body = Buffer.alloc(96, 0x61);
    const frame = Buffer.concat([header(0x64, 100), body]);
    assert.deepEqual(decodeChunks(new FrameDecoder({ maxMessageLength: 100 }), [frame]), [frame]);
  });

  test('checks a header that arrives one byte at a time', () => {
    const decoder = new FrameDecoder({ maxMessageLength: 1000 });
    const bad = header(0x44, 1001);
    for (let i = 0; i < 4; i++) {
      decoder.push(bad.subarray(i, i + 1));
      assert.equal(decoder.next(), null);
    }
    decoder.push(bad.subarray(4));
    assert.throws(() => decoder.next(), ProtocolError);
  });

  test('startup packets must be 8..10000 bytes by default', () => {
    for (const length of [0, 4, 7, 10_001, 0x7fff_ffff]) {
      const decoder = new FrameDecoder({ phase: FramePhase.Startup });
      const bytes = Buffer.alloc(4);
      bytes.writeInt32BE(length);
      decoder.push(bytes);
      assert.throws(() => decoder.next(), ProtocolError, `length ${length}`);
    }
  });

  test('memory follows the bytes received, not the length a peer declares', () => {
    const decoder = new FrameDecoder();
    decoder.push(Buffer.concat([header(0x44, 500_000_000), Buffer.alloc(1000)]));
    assert.equal(decoder.next(), null);
    assert.ok(decoder.ownedBytes <= 256 * 1024, `owns ${decoder.ownedBytes}`);
  });

  test('lets go of a giant frame once it is handed out', () => {
    const size = 3 * 1024 * 1024;
    const frame = Buffer.concat([header(0x64, size + 4), Buffer.alloc(size, 7)]);
    const decoder = new FrameDecoder();
    const frames = decodeChunks(decoder, chunksOf(frame, 65_536));
    assert.equal(frames.length, 1);
    assert.deepEqual(frames[0], frame);
    assert.equal(decoder.ownedBytes, 0);
  });

  test('setMaxMessageLength raises the limit once the client has authenticated', () => {
    const decoder = new FrameDecoder({ maxMessageLength: MAX_AUTH_MESSAGE_LENGTH });
    decoder.setMaxMessageLength(1 << 20);
    assert.equal(decoder.maxMessageLength, 1 << 20);
    decoder.push(header(0x51, 100_000));
    assert.equal(decoder.next(), null);
  });

  test('refuses nonsensical limits', () => {
    assert.throws(() => new FrameDecoder({ maxMessageLength: 3 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxStartupLength: 7 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxMessageLength: 2 ** 31 }), RangeError);
  });
});
