// Builders of protocol bytes for tests: server streams as a real PostgreSQL writes them
// (RowDescription, DataRow, CommandComplete, ReadyForQuery, ...), client messages, and ways to
// cut a stream into chunks. Not exported from index.ts: tests import this file by path.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import type { FrameDecoder } from '../frame-decoder.ts';
import { BackendMessageType, FrontendMessageType, type TransactionStatus } from '../messages.ts';
import { FrameWriter, cstringLength, serializeReadyForQuery } from '../serializer.ts';

/** One column of a RowDescription; defaults describe a `text` column of a query result. */
export interface FieldSpec {
  name: string;
  tableOid?: number;
  columnNumber?: number;
  typeOid?: number;
  typeSize?: number;
  typeModifier?: number;
  format?: 0 | 1;
}

export const TypeOid = {
  bool: 16,
  int4: 23,
  int8: 20,
  text: 25,
  bytea: 17,
  timestamptz: 1184,
} as const;

export function rowDescription(fields: readonly FieldSpec[]): Buffer {
  let length = 2;
  for (const field of fields) length += cstringLength(field.name) + 18;
  const writer = FrameWriter.message(BackendMessageType.RowDescription, length).int16(fields.length);
  for (const field of fields) {
    writer
      .cstring(field.name)
      .int32(field.tableOid ?? 0)
      .int16(field.columnNumber ?? 0)
      .int32(field.typeOid ?? TypeOid.text)
      .int16(field.typeSize ?? -1)
      .int32(field.typeModifier ?? -1)
      .int16(field.format ?? 0);
  }
  return writer.finish();
}

/** Values in text format; null is SQL NULL (length -1). */
export function dataRow(values: readonly (string | Uint8Array | null)[]): Buffer {
  const encoded = values.map((value) => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value));
  let length = 2;
  for (const value of encoded) length += 4 + (value?.length ?? 0);
  const writer = FrameWriter.message(BackendMessageType.DataRow, length).int16(values.length);
  for (const value of encoded) {
    if (value === null) writer.int32(-1);
    else writer.int32(value.length).bytes(value);
  }
  return writer.finish();
}

function tagged(type: number, text: string): Buffer {
  return FrameWriter.message(type, cstringLength(text)).cstring(text).finish();
}

function empty(type: number): Buffer {
  return FrameWriter.message(type, 0).finish();
}

export function commandComplete(tag: string): Buffer {
  return tagged(BackendMessageType.CommandComplete, tag);
}

export function readyForQuery(status: TransactionStatus = 'I'): Buffer {
  return serializeReadyForQuery(status);
}

export const emptyQueryResponse = (): Buffer => empty(BackendMessageType.EmptyQueryResponse);
export const parseComplete = (): Buffer => empty(BackendMessageType.ParseComplete);
export const bindComplete = (): Buffer => empty(BackendMessageType.BindComplete);
export const closeComplete = (): Buffer => empty(BackendMessageType.CloseComplete);
export const noData = (): Buffer => empty(BackendMessageType.NoData);
export const copyDone = (): Buffer => empty(BackendMessageType.CopyDone);

export function copyData(data: Uint8Array): Buffer {
  return FrameWriter.message(BackendMessageType.CopyData, data.length).bytes(data).finish();
}

/** CopyOutResponse in text format with `columns` columns. */
export function copyOutResponse(columns: number): Buffer {
  const writer = FrameWriter.message(BackendMessageType.CopyOutResponse, 3 + 2 * columns)
    .byte(0)
    .int16(columns);
  for (let i = 0; i < columns; i++) writer.int16(0);
  return writer.finish();
}

export function notificationResponse(processId: number, channel: string, payload: string): Buffer {
  const length = 4 + cstringLength(channel) + cstringLength(payload);
  return FrameWriter.message(BackendMessageType.NotificationResponse, length).int32(processId).cstring(channel).cstring(payload).finish();
}

/** What a simple-protocol SELECT returns: T, one D per row, C `SELECT n`, Z. */
export function selectResult(
  fields: readonly FieldSpec[],
  rows: readonly (readonly (string | Uint8Array | null)[])[],
  status: TransactionStatus = 'I',
): Buffer {
  return Buffer.concat([
    rowDescription(fields),
    ...rows.map((row) => dataRow(row)),
    commandComplete(`SELECT ${rows.length}`),
    readyForQuery(status),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Client messages

export function query(sql: string): Buffer {
  return tagged(FrontendMessageType.Query, sql);
}

export const sync = (): Buffer => empty(FrontendMessageType.Sync);
export const flush = (): Buffer => empty(FrontendMessageType.Flush);

// ---------------------------------------------------------------------------------------------
// Chunking

/** `buf` cut at each of `points` (ascending offsets), as a socket might deliver it. */
export function splitAt(buf: Buffer, ...points: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, buf.length]) {
    chunks.push(buf.subarray(start, point));
    start = point;
  }
  return chunks;
}

/** `buf` in chunks of `size` bytes (the last may be shorter). */
export function chunksOf(buf: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < buf.length; at += size) chunks.push(buf.subarray(at, at + size));
  return chunks;
}

/** Pushes each chunk and takes every frame it completes, the way a socket handler does. */
export function decodeChunks(decoder: FrameDecoder, chunks: Iterable<Buffer>): Buffer[] {
  const frames: Buffer[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let frame = decoder.next(); frame !== null; frame = decoder.next()) frames.push(frame);
  }
  return frames;
}
