// The admin API's HTTP plumbing: errors into responses, JSON bodies in and out. Kept apart from
// the routes so a handler only ever throws; the status a client sees is the one the code table in
// lib/errors.ts gives the error's code, applied here and nowhere else.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorCodes, Lb4Error, type Lb4ErrorCode } from '../errors.js';

/** Largest request body the admin API reads: a whole config for /reload fits many times over. */
export const maxBodyBytes = 1024 * 1024;

/**
 * Response headers an error needs besides its status (`WWW-Authenticate` on a 401, `Allow` on a
 * 405). They are the HTTP layer's business, so they ride beside the error rather than in it.
 */
const errorHeaders = new WeakMap<Lb4Error, Readonly<Record<string, string>>>();

/** An error the admin API raises itself (bad JSON, unknown route, ...), with extra headers if the status needs them. */
export function httpError(code: Lb4ErrorCode, message: string, options: { headers?: Record<string, string> } = {}): Lb4Error {
  const err = new Lb4Error(code, message);
  if (options.headers) errorHeaders.set(err, Object.freeze({ ...options.headers }));
  return err;
}

/** The HTTP status of an error code, from the one code table (lib/errors.ts). */
export function statusOf(code: Lb4ErrorCode): number {
  return errorCodes[code].status;
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
  if (err instanceof Lb4Error) {
    const body: ErrorBody = { error: { code: err.code, message: err.message } };
    if (err.field !== undefined) body.error.field = err.field;
    return { status: statusOf(err.code), body, headers: errorHeaders.get(err) ?? {}, expected: true };
  }
  // A Node-style system error (e.g. a reload whose new listener cannot bind) says exactly what
  // went wrong on the host; the operator needs that message, and it holds nothing secret. An
  // address the host will not give is no fault of lb4: the request was fine, the host is in the way.
  if (isSystemError(err)) {
    const listen = err.syscall === 'bind' || err.syscall === 'listen' || err.syscall === 'socket';
    return { status: listen ? statusOf('LB4_LISTEN_FAILED') : 500, body: { error: { code: err.code, message: err.message } }, headers: {}, expected: listen };
  }
  return { status: statusOf('LB4_INTERNAL'), body: { error: { code: 'LB4_INTERNAL', message: 'internal error (see the lb4 log)' } }, headers: {}, expected: false };
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
    throw httpError('LB4_BAD_JSON', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

function tooLarge(): Lb4Error {
  // The rest of the body is not read: the connection closes after the answer, so a client
  // still sending cannot make the server buffer or parse more.
  return httpError('LB4_BODY_TOO_LARGE', `the request body is larger than ${maxBodyBytes} bytes`, { headers: { connection: 'close' } });
}
