// The admin API's HTTP plumbing: its own error codes, the one table that maps every error code
// to an HTTP status, JSON bodies in and out. Kept apart from the routes so a handler only ever
// throws, and the status a client sees is decided here and nowhere else.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Lb4Error, type Lb4ErrorCode } from '../errors.js';

/** Largest request body the admin API reads: a whole config for /reload fits many times over. */
export const maxBodyBytes = 1024 * 1024;

/** Error codes that only the admin API raises (the rest are lib/errors.ts's {@link Lb4ErrorCode}). */
export type AdminErrorCode =
  | 'LB4_BAD_JSON'
  | 'LB4_BODY_TOO_LARGE'
  | 'LB4_UNAUTHORIZED'
  | 'LB4_NOT_FOUND'
  | 'LB4_METHOD_NOT_ALLOWED'
  | 'LB4_INTERNAL';

/**
 * The HTTP status of every error code. Typed over all codes, so a code added to lib/errors.ts
 * does not compile until someone decides here how the API reports it.
 */
export const statusByCode: Readonly<Record<Lb4ErrorCode | AdminErrorCode, number>> = Object.freeze({
  LB4_INVALID_OPTION: 400,
  LB4_INVALID_ADDRESS: 400,
  LB4_INVALID_DURATION: 400,
  LB4_UNRESOLVABLE_HOST: 400,
  LB4_NO_BACKEND: 400,
  LB4_CONFIG_FILE: 400,
  // Raised when there is no config file to re-read: the client has to send the options.
  LB4_RELOAD_FAILED: 400,
  LB4_BAD_JSON: 400,
  LB4_UNAUTHORIZED: 401,
  LB4_UNKNOWN_BACKEND: 404,
  LB4_NOT_FOUND: 404,
  LB4_METHOD_NOT_ALLOWED: 405,
  LB4_DUPLICATE_BACKEND: 409,
  // An address another program holds: the request was fine, the host's state is in the way.
  LB4_LISTEN_FAILED: 409,
  LB4_BODY_TOO_LARGE: 413,
  LB4_INTERNAL: 500,
  LB4_CLOSED: 503,
});

/** An error the admin API raises itself (bad JSON, unknown route, ...), with extra headers if the status needs them. */
export class AdminError extends Error {
  readonly code: AdminErrorCode;
  readonly field?: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: AdminErrorCode, message: string, options: { field?: string; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'AdminError';
    this.code = code;
    if (options.field !== undefined) this.field = options.field;
    this.headers = Object.freeze({ ...options.headers });
  }
}

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** How an error is answered; `expected` is false for errors that are bugs or host trouble (logged as errors). */
export interface ErrorReply {
  status: number;
  body: ErrorBody;
  headers: Readonly<Record<string, string>>;
  expected: boolean;
}

function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string; syscall: string } {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** Decides the status and body for anything a handler threw. */
export function errorReply(err: unknown): ErrorReply {
  if (err instanceof AdminError || err instanceof Lb4Error) {
    const body: ErrorBody = { error: { code: err.code, message: err.message } };
    if (err.field !== undefined) body.error.field = err.field;
    return { status: statusByCode[err.code], body, headers: err instanceof AdminError ? err.headers : {}, expected: true };
  }
  // A Node-style system error (e.g. a reload whose new listener cannot bind) says exactly what
  // went wrong on the host; the operator needs that message, and it holds nothing secret.
  if (isSystemError(err)) {
    return { status: 500, body: { error: { code: err.code, message: err.message } }, headers: {}, expected: false };
  }
  return { status: 500, body: { error: { code: 'LB4_INTERNAL', message: 'internal error (see the lb4 log)' } }, headers: {}, expected: false };
}

/** Writes a JSON response; `body` undefined sends none (204). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Reads a request body of at most {@link maxBodyBytes} and parses it as JSON. Resolves
 * `undefined` when there is no body (or only white space), which some endpoints take as "no
 * options". Rejects with LB4_BODY_TOO_LARGE before reading when Content-Length already says so.
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBodyBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let length = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length <= maxBodyBytes) {
        chunks.push(chunk);
        return;
      }
      // Stop keeping the body but let the stream run: destroying the request would destroy the
      // socket before the 413 could be written.
      req.off('data', onData);
      req.resume();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', resolve);
    req.once('error', reject);
    // A client that goes away mid-body: nothing will answer, but nothing should wait forever.
    req.once('close', () => reject(new Error('the client closed the connection before sending the whole body')));
  });
  const text = Buffer.concat(chunks, length).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AdminError('LB4_BAD_JSON', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

function tooLarge(): AdminError {
  // The rest of the body is not read: the connection closes after the answer, so a client
  // still sending cannot make the server buffer or parse more.
  return new AdminError('LB4_BODY_TOO_LARGE', `the request body is larger than ${maxBodyBytes} bytes`, { headers: { connection: 'close' } });
}
