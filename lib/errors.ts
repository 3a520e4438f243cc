// Every error lb4 raises for bad input from a person, declared once. Each carries a stable
// `code` and, where it concerns one option, the `field` it is about, so the CLI can print one
// clear line and programs can branch on the code.

const messages = {
  LB4_INVALID_OPTION: 'invalid option',
  LB4_INVALID_ADDRESS: 'invalid address',
  LB4_INVALID_DURATION: 'invalid duration',
  LB4_UNRESOLVABLE_HOST: 'host name does not resolve',
  LB4_NO_BACKEND: 'no backend',
  LB4_DUPLICATE_BACKEND: 'duplicate backend',
  LB4_UNKNOWN_BACKEND: 'unknown backend',
  LB4_LISTEN_FAILED: 'cannot listen',
  LB4_CLOSED: 'balancer is closed',
  LB4_CONFIG_FILE: 'cannot use the config file',
  LB4_RELOAD_FAILED: 'reload failed',
} as const;

/** The codes of lb4's own errors. */
export type Lb4ErrorCode = keyof typeof messages;

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
    return messages[this.code];
  }
}
