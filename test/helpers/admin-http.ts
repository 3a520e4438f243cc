// HTTP requests to the admin API, each on its own connection, with JSON bodies parsed: for the
// admin API's tests against an in-memory target and against a real balancer.

import http from 'node:http';
import { within } from './sockets.js';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // Parsed JSON, read field by field by the tests (never passed on).
  json: any;
}

export interface Where {
  port?: number;
  socketPath?: string;
}

export interface CallOptions {
  body?: unknown;
  raw?: string;
  token?: string | null;
  headers?: http.OutgoingHttpHeaders;
}

/** One HTTP request on its own connection; JSON bodies are parsed. */
export function call(where: Where, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: http.OutgoingHttpHeaders = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(payload);
  }
  const req = http.request({ host: '127.0.0.1', port: where.port, socketPath: where.socketPath, method, path, headers, agent: false });
  const done = new Promise<Reply>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const json = text !== '' && /application\/json/.test(res.headers['content-type'] ?? '') ? JSON.parse(text) : undefined;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
  });
  req.end(payload);
  return within(done, 10_000, `${method} ${path}`);
}
