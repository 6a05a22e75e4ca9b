// The simple-query messages libs/wire has no serializer or parser for (it stops at the startup
// phase): Query, RowDescription, DataRow and CommandComplete, written with its FrameWriter and
// read with its MessageReader, for the test client and the test server alike.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import { BackendMessageType, FrameWriter, FrontendMessageType, cstringLength, readFrame, type MessageReader } from '@tenantgate/wire';

const TEXT_OID = 25;

export function serializeQuery(sql: string): Buffer {
  return FrameWriter.message(FrontendMessageType.Query, cstringLength(sql, 'query')).cstring(sql).finish();
}

/** The query string of a 'Q' frame. */
export function parseQuery(frame: Buffer): string {
  const reader = readFrame(frame, FrontendMessageType.Query, 'Query');
  const sql = reader.cstring();
  reader.end();
  return sql;
}

/** A RowDescription of `text` columns in text format. */
export function serializeRowDescription(names: readonly string[]): Buffer {
  let length = 2;
  for (const name of names) length += cstringLength(name, 'column name') + 18;
  const writer = FrameWriter.message(BackendMessageType.RowDescription, length).int16(names.length);
  for (const name of names) writer.cstring(name).int32(0).int16(0).int32(TEXT_OID).int16(-1).int32(-1).int16(0);
  return writer.finish();
}

export function serializeDataRow(values: readonly (string | null)[]): Buffer {
  const encoded = values.map((value) => (value === null ? null : Buffer.from(value, 'utf8')));
  let length = 2;
  for (const value of encoded) length += 4 + (value?.length ?? 0);
  const writer = FrameWriter.message(BackendMessageType.DataRow, length).int16(values.length);
  for (const value of encoded) {
    if (value === null) writer.int32(-1);
    else writer.int32(value.length).bytes(value);
  }
  return writer.finish();
}

export function serializeCommandComplete(tag: string): Buffer {
  return FrameWriter.message(BackendMessageType.CommandComplete, cstringLength(tag, 'command tag')).cstring(tag).finish();
}

function int16(reader: MessageReader): number {
  return reader.bytes(2).readInt16BE(0);
}

/** Column names of a RowDescription. */
export function parseRowDescription(frame: Buffer): string[] {
  const reader = readFrame(frame, BackendMessageType.RowDescription, 'RowDescription');
  const names: string[] = [];
  for (let count = int16(reader); count > 0; count--) {
    names.push(reader.cstring());
    reader.bytes(18); // table oid, column number, type oid, size, modifier, format
  }
  reader.end();
  return names;
}

/** Values of a DataRow in text format; null for SQL NULL. */
export function parseDataRow(frame: Buffer): (string | null)[] {
  const reader = readFrame(frame, BackendMessageType.DataRow, 'DataRow');
  const values: (string | null)[] = [];
  for (let count = int16(reader); count > 0; count--) {
    const length = reader.int32();
    values.push(length === -1 ? null : reader.bytes(length).toString('utf8'));
  }
  reader.end();
  return values;
}

export function parseCommandComplete(frame: Buffer): string {
  const reader = readFrame(frame, BackendMessageType.CommandComplete, 'CommandComplete');
  const tag = reader.cstring();
  reader.end();
  return tag;
}
