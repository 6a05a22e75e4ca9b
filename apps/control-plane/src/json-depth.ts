// How deep a JSON body may nest. The tenant record nests four levels; a PATCH nested thousands
// deep once overflowed the stack of the recursive merge (a 500). Counted without recursion.
// Map: docs/architecture.md, "Control plane".

export const MAX_JSON_DEPTH = 32;

/** Whether `value` has objects or arrays nested more than `limit` deep. */
export function jsonDepthExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, depth + 1]);
  }
  return false;
}
