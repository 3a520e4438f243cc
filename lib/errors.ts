// Every error lb4 raises for bad input from a person, and every error its admin API answers with,
// declared once in `errorCodes`: each code has a short summary and the HTTP status the admin API
// answers it with (lib/api/http.ts reads the status from here and decides it nowhere else). Each
// error carries a stable `code` and, where it concerns one option, the `field` it is about, so the
// CLI can print one clear line and programs can branch on the code.

/** Every code: its summary, and the HTTP status the admin API gives it. */
export const errorCodes = Object.freeze({
  LB4_INVALID_OPTION: { summary: 'invalid option', status: 400 },
  LB4_INVALID_ADDRESS: { summary: 'invalid address', status: 400 },
  LB4_INVALID_DURATION: { summary: 'invalid duration', status: 400 },
  LB4_UNRESOLVABLE_HOST: { summary: 'host name does not resolve', status: 400 },
  LB4_NO_BACKEND: { summary: 'no backend', status: 400 },
  LB4_CONFIG_FILE: { summary: 'cannot use the config file', status: 400 },
  // Raised when there is no config file to re-read: the client has to send the options.
  LB4_RELOAD_FAILED: { summary: 'reload failed', status: 400 },
  LB4_BAD_JSON: { summary: 'the request body is not JSON', status: 400 },
  LB4_UNAUTHORIZED: { summary: 'no or wrong bearer token', status: 401 },
  // A request a web browser sent on behalf of a page (cross-site request forgery, DNS rebinding).
  LB4_FORBIDDEN: { summary: 'request from a web page refused', status: 403 },
  LB4_UNKNOWN_BACKEND: { summary: 'unknown backend', status: 404 },
  LB4_NOT_FOUND: { summary: 'no such endpoint', status: 404 },
  LB4_METHOD_NOT_ALLOWED: { summary: 'method not allowed', status: 405 },
  LB4_DUPLICATE_BACKEND: { summary: 'duplicate backend', status: 409 },
  // A change to a backend a DNS entry owns (its weight, its id): the entry's answers decide it.
  LB4_DNS_OWNED: { summary: 'the backend belongs to a DNS entry', status: 409 },
  // An address another program holds: the request was fine, the host's state is in the way.
  LB4_LISTEN_FAILED: { summary: 'cannot listen', status: 409 },
  // The host cannot run nat listeners (not root, no nft, no nf_tables), or nft refused lb4's rules.
  LB4_NAT_UNAVAILABLE: { summary: 'kernel NAT unavailable', status: 409 },
  LB4_NAT_RULES: { summary: 'nftables refused the rules', status: 500 },
  LB4_BODY_TOO_LARGE: { summary: 'the request body is too large', status: 413 },
  LB4_INTERNAL: { summary: 'internal error', status: 500 },
  LB4_CLOSED: { summary: 'balancer is closed', status: 503 },
} as const satisfies Record<string, { readonly summary: string; readonly status: number }>);

/** The codes of lb4's own errors. */
export type Lb4ErrorCode = keyof typeof errorCodes;

/** An error in what a person asked of lb4: an option, an address, a call on a closed balancer. */
export class Lb4Error extends Error {
  readonly code: Lb4ErrorCode;
  /** The option or field the error is about, e.g. `backends[1].weight`. */
  readonly field?: string;

  constructor(code: Lb4ErrorCode, detail: string, options?: { field?: string; cause?: unknown }) {
    super(options?.field ? `${options.field}: ${detail}` : detail, { cause: options?.cause });
    this.name = 'Lb4Error';
    this.code = code;
    if (options?.field) this.field = options.field;
  }

  /** The generic description of this error's code. */
  get summary(): string {
    return errorCodes[this.code].summary;
  }
}

/**
 * What an aborted `signal` option makes lb4 reject with, as Node's own APIs do: name
 * `AbortError`, code `ABORT_ERR`, and the signal's reason as `cause`.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(cause: unknown) {
    super('The operation was aborted', { cause });
    this.name = 'AbortError';
  }
}
