// The `,key=value` parameters after a backend's address on the command line (`--backend
// 10.0.0.5:80,weight=2,id=a`, `--backend dns:app:80,maxBackends=8`): one reader for both forms.

import { Lb4Error } from '../errors.js';

/** The `key=value` pairs of `params` (a missing `=` gives an empty value), trimmed, in order. */
export function specParams(params: readonly string[]): Array<[key: string, value: string]> {
  return params.map((param) => {
    const eq = param.indexOf('=');
    return [(eq < 0 ? param : param.slice(0, eq)).trim(), eq < 0 ? '' : param.slice(eq + 1).trim()];
  });
}

/** `value` as a whole number, or an error naming `key` and the whole spec `text`. */
export function wholeNumberParam(key: string, value: string, text: string, field: string): number {
  if (!/^\d+$/.test(value)) throw new Lb4Error('LB4_INVALID_OPTION', `${key} must be a whole number, got "${value}" in "${text}"`, { field });
  return Number(value);
}
