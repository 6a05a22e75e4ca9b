// Properties checked with fast-check: every message survives encode → decode unchanged, and no
// byte sequence a peer can send makes the decoder, the tracker or a parser throw anything but a
// ProtocolError, or buffer more than one frame's limit.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from './errors.ts';
import { FrameDecoder, FramePhase } from './frame-decoder.ts';
import { MessageTracker } from './message-tracker.ts';
import {
  BackendMessageType,
  NoticeFieldCode,
  PasswordResponseKind,
  parseBackendMessage,
  parseFrontendMessage,
  type BackendMessage,
  type FrontendMessage,
  type NoticeFields,
} from './messages.ts';
import { serializeBackendMessage, serializeFrontendMessage } from './serializer.ts';
import { PROTOCOL_OPTION_PREFIX, parseStartupPacket, serializeStartupPacket, type StartupPacket } from './startup.ts';
import { decodeChunks } from './testing/builders.ts';

const RUNS = { numRuns: 300 };
/** Parsers build ordinary objects; deepStrictEqual tells them from null-prototype ones. */
const PLAIN = { noNullPrototype: true };

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Any Unicode text without NUL (which cannot be on the wire inside a string). */
const text = (maxLength = 16) => fc.string({ unit: 'binary', maxLength }).map((s) => s.replaceAll('\0', ''));
const name = text().filter((s) => s.length > 0);
const bytes = (minLength = 0, maxLength = 64) => fc.uint8Array({ minLength, maxLength }).map((b) => Buffer.from(b));
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const cancelKey = bytes(4, 256);

const knownFieldCodes = new Set<number>(Object.values(NoticeFieldCode));
const noticeFields: fc.Arbitrary<NoticeFields> = fc.record(
  {
    ...(Object.fromEntries(Object.keys(NoticeFieldCode).map((key) => [key, text()])) as Record<
      keyof typeof NoticeFieldCode,
      fc.Arbitrary<string>
    >),
    unknown: fc.array(
      fc.tuple(
        fc.integer({ min: 1, max: 255 }).filter((code) => !knownFieldCodes.has(code)),
        text(),
      ),
      { minLength: 1, maxLength: 3 },
    ),
  },
  { requiredKeys: ['severity', 'code', 'message'], noNullPrototype: true },
);

const backendMessage: fc.Arbitrary<BackendMessage> = fc.oneof(
  fc.constant({ kind: 'AuthenticationOk' as const }),
  fc.constant({ kind: 'AuthenticationCleartextPassword' as const }),
  bytes(4, 4).map((salt) => ({ kind: 'AuthenticationMD5Password' as const, salt })),
  fc.array(name, { minLength: 1, maxLength: 4 }).map((mechanisms) => ({ kind: 'AuthenticationSASL' as const, mechanisms })),
  bytes().map((data) => ({ kind: 'AuthenticationSASLContinue' as const, data })),
  bytes().map((data) => ({ kind: 'AuthenticationSASLFinal' as const, data })),
  fc.record({ kind: fc.constant('ParameterStatus' as const), name: text(), value: text() }, PLAIN),
  fc.record({ kind: fc.constant('BackendKeyData' as const), processId: int32, secretKey: cancelKey }, PLAIN),
  fc.constantFrom('I', 'T', 'E').map((status) => ({ kind: 'ReadyForQuery' as const, status })),
  noticeFields.map((fields) => ({ kind: 'ErrorResponse' as const, fields })),
  noticeFields.map((fields) => ({ kind: 'NoticeResponse' as const, fields })),
  fc.record(
    {
      kind: fc.constant('NegotiateProtocolVersion' as const),
      newestMinorVersion: fc.integer({ min: 0, max: 0xffff }),
      unrecognizedOptions: fc.array(text(), { maxLength: 4 }),
    },
    PLAIN,
  ),
);

const frontendMessage: fc.Arbitrary<FrontendMessage> = fc.oneof(
  bytes().map((password) => ({ kind: 'PasswordMessage' as const, password: Buffer.from(password.filter((b) => b !== 0)) })),
  fc.record({ kind: fc.constant('SASLInitialResponse' as const), mechanism: text(), data: fc.option(bytes(), { nil: null }) }, PLAIN),
  bytes().map((data) => ({ kind: 'SASLResponse' as const, data })),
  fc.constant({ kind: 'Terminate' as const }),
);

const parameterName = name.filter((s) => s !== 'user' && !s.startsWith(PROTOCOL_OPTION_PREFIX));
const startupPacket: fc.Arbitrary<StartupPacket> = fc.oneof(
  fc.constant({ kind: 'SSLRequest' as const }),
  fc.constant({ kind: 'GSSENCRequest' as const }),
  fc.record({ kind: fc.constant('CancelRequest' as const), processId: int32, secretKey: cancelKey }, PLAIN),
  fc.record(
    {
      kind: fc.constant('StartupMessage' as const),
      minorVersion: fc.integer({ min: 0, max: 0xffff }),
      parameters: fc
        .tuple(name, fc.uniqueArray(fc.tuple(parameterName, text()), { selector: ([key]) => key, maxLength: 6 }))
        .map(([user, rest]) => new Map([['user', user], ...rest])),
      protocolOptions: fc
        .uniqueArray(fc.tuple(text(), text()), { selector: ([key]) => key, maxLength: 3 })
        .map((pairs) => new Map(pairs.map(([key, value]) => [PROTOCOL_OPTION_PREFIX + key, value]))),
    },
    PLAIN,
  ),
);

/** Cut points for a stream of `length` bytes, sorted, as a socket might cut it. */
function cuts(length: number, points: number[]): number[] {
  return [...new Set(points.map((p) => p % (length + 1)))].sort((a, b) => a - b);
}

function splitWith(stream: Buffer, points: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...cuts(stream.length, points), stream.length]) {
    chunks.push(stream.subarray(start, point));
    start = point;
  }
  return chunks;
}

/** Deep equality that also checks the order of Map entries. */
function ordered(packet: StartupPacket): unknown {
  if (packet.kind !== 'StartupMessage') return packet;
  return { ...packet, parameters: [...packet.parameters], protocolOptions: [...packet.protocolOptions] };
}

function onlyProtocolErrors(run: () => void): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Round trips

describe('encode then decode gives the same message', () => {
  test('server messages', () => {
    fc.assert(
      fc.property(backendMessage, (message) => {
        assert.deepEqual(parseBackendMessage(serializeBackendMessage(message)), message);
      }),
      RUNS,
    );
  });

  test('client messages', () => {
    fc.assert(
      fc.property(frontendMessage, (message) => {
        const expected = message.kind === 'Terminate' ? PasswordResponseKind.Password : message.kind;
        assert.deepEqual(parseFrontendMessage(serializeFrontendMessage(message), expected), message);
      }),
      RUNS,
    );
  });

  test('startup packets, parameters in order', () => {
    fc.assert(
      fc.property(startupPacket, (packet) => {
        assert.deepEqual(ordered(parseStartupPacket(serializeStartupPacket(packet))), ordered(packet));
      }),
      RUNS,
    );
  });

  test('a stream of messages cut anywhere frames back into the same messages', () => {
    fc.assert(
      fc.property(fc.array(backendMessage, { maxLength: 12 }), fc.array(fc.nat()), (messages, points) => {
        const frames = messages.map((message) => serializeBackendMessage(message));
        const stream = Buffer.concat(frames);
        assert.deepEqual(decodeChunks(new FrameDecoder(), splitWith(stream, points)), frames);
        const tracker = new MessageTracker();
        for (const chunk of splitWith(stream, points)) tracker.push(chunk);
        assert.equal(tracker.messageCount, frames.length);
        const lastReady = messages.findLast((message) => message.kind === 'ReadyForQuery');
        assert.equal(tracker.transactionStatus, lastReady?.status ?? null);
      }),
      RUNS,
    );
  });

  test('startup packets cut anywhere frame back into the same packets', () => {
    fc.assert(
      fc.property(fc.array(startupPacket, { maxLength: 5 }), fc.array(fc.nat()), (packets, points) => {
        const frames = packets.map((packet) => serializeStartupPacket(packet));
        const decoder = new FrameDecoder({ phase: FramePhase.Startup });
        assert.deepEqual(decodeChunks(decoder, splitWith(Buffer.concat(frames), points)), frames);
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile bytes

/** Frames with plausible and implausible declared lengths, so that both paths get exercised. */
const hostileStream = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...Object.values(BackendMessageType), 0x70, 0x58), fc.integer({ min: 0, max: 255 })),
      fc.oneof(fc.integer({ min: -8, max: 300 }), int32),
      bytes(0, 300),
    ),
    { maxLength: 8 },
  )
  .map((parts) =>
    Buffer.concat(
      parts.map(([type, length, body]) => {
        const header = Buffer.alloc(5);
        header[0] = type;
        header.writeInt32BE(length, 1);
        return Buffer.concat([header, body]);
      }),
    ),
  );

const anyStream = fc.oneof(bytes(0, 2000), hostileStream);

describe('hostile input', () => {
  test('the decoder throws only ProtocolError and buffers at most one frame limit plus one chunk', () => {
    fc.assert(
      fc.property(
        anyStream,
        fc.array(fc.nat()),
        fc.constantFrom(FramePhase.Startup, FramePhase.Normal),
        fc.integer({ min: 8, max: 400 }),
        (stream, points, phase, limit) => {
          const decoder = new FrameDecoder({ phase, maxMessageLength: limit, maxStartupLength: limit });
          const maxFrame = phase === FramePhase.Startup ? limit : limit + 1;
          onlyProtocolErrors(() => {
            for (const chunk of splitWith(stream, points)) {
              decoder.push(chunk);
              assert.ok(decoder.bufferedBytes <= maxFrame + chunk.length);
              for (let frame = decoder.next(); frame !== null; frame = decoder.next()) {
                assert.ok(frame.length <= maxFrame);
                assert.ok(decoder.ownedBytes <= maxFrame);
              }
              assert.ok(decoder.bufferedBytes < maxFrame);
              assert.ok(decoder.ownedBytes <= maxFrame);
            }
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('the tracker throws only ProtocolError', () => {
    fc.assert(
      fc.property(anyStream, fc.array(fc.nat()), (stream, points) => {
        const tracker = new MessageTracker({ maxMessageLength: 1000 });
        onlyProtocolErrors(() => {
          for (const chunk of splitWith(stream, points)) tracker.push(chunk);
        });
      }),
      { numRuns: 1000 },
    );
  });

  test('parsers throw only ProtocolError on any framed bytes', () => {
    fc.assert(
      fc.property(hostileStream, (stream) => {
        onlyProtocolErrors(() => {
          for (const frame of decodeChunks(new FrameDecoder({ maxMessageLength: 400 }), [stream])) {
            onlyProtocolErrors(() => parseBackendMessage(frame, { minorVersion: frame[5]! % 3 }));
            for (const kind of Object.values(PasswordResponseKind)) {
              onlyProtocolErrors(() => parseFrontendMessage(frame, kind));
            }
          }
        });
      }),
      { numRuns: 1000 },
    );
  });

  test('the startup parser throws only ProtocolError on any packet', () => {
    const code = fc.oneof(fc.constantFrom(80877102, 80877103, 80877104, 196608, 196610), fc.nat());
    const body = fc.oneof(
      bytes(0, 300),
      fc.array(fc.oneof(text(8), fc.constant('user')), { maxLength: 8 }).map((parts) => Buffer.from(parts.join('\0'), 'utf8')),
    );
    fc.assert(
      fc.property(code, body, (version, rest) => {
        const packet = Buffer.alloc(8 + rest.length);
        packet.writeInt32BE(packet.length, 0);
        packet.writeUInt32BE(version >>> 0, 4);
        rest.copy(packet, 8);
        onlyProtocolErrors(() => parseStartupPacket(packet));
      }),
      { numRuns: 1000 },
    );
  });
});
