// The opaque cursor of `GET /v1/tenants`: the last id of a page, base64url-encoded. Tenants are
// listed in id order, so the next page starts after it, whatever was created or deleted since.
import { TENANT_ID_PATTERN } from '@tenantgate/tenancy';

const ID = new RegExp(TENANT_ID_PATTERN);

export function encodeCursor(lastId: string): string {
  return Buffer.from(`after:${lastId}`, 'utf8').toString('base64url');
}

/** The id a cursor points after, or undefined when it is not a cursor this service made. */
export function decodeCursor(cursor: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith('after:')) return undefined;
  const id = text.slice('after:'.length);
  return ID.test(id) ? id : undefined;
}
