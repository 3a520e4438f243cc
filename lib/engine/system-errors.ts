// Errors from the data plane cross the boundary as numbers (errno, syscall, listener) and become
// Node-style system errors here, with a human-readable text for the errno values lb4 reports most
// often: Node has no public strerror() before v23, and "EADDRINUSE" alone is not a message a
// newcomer can act on.

import { getSystemErrorName } from 'node:util';

const messages: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EAFNOSUPPORT: 'address family not supported',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'timed out',
  EINVAL: 'invalid argument',
};

/** A short description of a positive errno value. */
export function osErrorMessage(errno: number): string {
  return messages[getSystemErrorName(-errno)] ?? `system error ${errno}`;
}

/** A Node-style system error, with where it happened when known. */
export type SystemError = NodeJS.ErrnoException & { address?: string; port?: number };

/** Turns an errno from the data plane into an error shaped like Node's own system errors. */
export function systemError(errno: number, syscall: string, where?: { address?: string; port?: number }): SystemError {
  const code = getSystemErrorName(-errno);
  let message = `${syscall} ${code}`;
  if (where?.address !== undefined) message += ` ${where.address}${where.port !== undefined ? `:${where.port}` : ''}`;
  const err = new Error(`${message} (${osErrorMessage(errno)})`) as SystemError;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (where?.address !== undefined) err.address = where.address;
  if (where?.port !== undefined) err.port = where.port;
  return err;
}
