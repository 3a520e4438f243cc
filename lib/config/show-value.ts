// How an error message quotes a value someone gave: as JSON where that is faithful, otherwise as
// JavaScript writes it. JSON.stringify alone turns NaN and Infinity (a YAML `.nan`, a program's
// division) into "null" and undefined into nothing, so the message would not say what was given.

/** A value for an error message, at most about 100 characters. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'function' || typeof value === 'symbol') return `a ${typeof value}`;
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
  } catch {
    json = undefined; // a cycle: only a program can give one
  }
  if (json === undefined) return typeof value;
  return json.length > 100 ? `${json.slice(0, 100)}...` : json;
}
