// The opaque cursor of the list endpoints (`GET /v1/tenants`, `GET /v1/clusters`): the last id of a page, base64url-encoded. Tenants are
// listed in id order, so the next page starts after it, whatever was created or deleted since.
import { TENANT_ID_PATTERN } from '@tenantgate/tenancy';
import { validationError } from './errors.ts';
import { DEFAULT_PAGE_SIZE } from './schemas.ts';

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

/**
 * `?limit=&cursor=` (already checked by the list schema) as a store reads them.
 * @throws 400 for a cursor this service did not make
 */
export function pageRequest(query: { limit?: string; cursor?: string }): { limit: number; after?: string } {
  const limit = query.limit === undefined ? DEFAULT_PAGE_SIZE : Number(query.limit);
  if (query.cursor === undefined) return { limit };
  const after = decodeCursor(query.cursor);
  if (after === undefined) throw validationError('querystring', [{ path: '/cursor', message: 'is not a cursor from this API' }]);
  return { limit, after };
}

/** A store's page as the API answers it: `{ items, nextCursor }`, null on the last page. */
export function pageAnswer<T, V>(
  page: { items: readonly T[]; more: boolean },
  idOf: (item: T) => string,
  view: (item: T) => V,
): { items: V[]; nextCursor: string | null } {
  const last = page.items.at(-1);
  return { items: page.items.map(view), nextCursor: page.more && last !== undefined ? encodeCursor(idOf(last)) : null };
}
