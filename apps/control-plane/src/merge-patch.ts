// JSON Merge Patch (RFC 7386), the body of PATCH /v1/tenants/:id: objects merge member by
// member, null removes a member, anything else (arrays included) replaces.
// @see https://www.rfc-editor.org/rfc/rfc7386#section-2

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete result[name];
    else result[name] = mergePatch(result[name], value);
  }
  return result;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
