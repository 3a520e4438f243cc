// Human-readable text for the errno values lb4 reports most often. Node has no public
// strerror() before v23, and "EADDRINUSE" alone is not a message a newcomer can act on.

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

import { getSystemErrorName } from 'node:util';

/** A short description of a positive errno value. */
export function osErrorMessage(errno: number): string {
  return messages[getSystemErrorName(-errno)] ?? `system error ${errno}`;
}
