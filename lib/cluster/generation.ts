// The backend-set generation a node reports in its heartbeats: a hash of what its listeners
// balance over, the same on two nodes with the same backends whatever order the file lists them
// in, so a pair whose configs differ is visible (logged, and shown by \`lb4 cluster\`).

/** FNV-1a over the backend set's lines, sorted so order in the file does not matter. */
export function backendSetGeneration(lines: readonly string[]): number {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from([...lines].sort().join('\n'))) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
