// A strict parser of the Prometheus text exposition format 0.0.4 (tested itself on broken input
// in test/api/metrics.test.ts), and a scrape of an admin API's /metrics, for the tests of /metrics
// against an in-memory target and against a real balancer.

import http from 'node:http';
import { within } from './sockets.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: string;
  samples: Sample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const floatValue = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/;
const types = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function parseFloatValue(text: string, where: string): number {
  if (!floatValue.test(text)) throw new Error(`${where}: "${text}" is not a float`);
  return text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
}

/** Parses `{a="x",b="y"}` at the start of `text`; returns the labels and what follows. */
function parseLabels(text: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let rest = text.slice(1);
  for (;;) {
    const name = labelName.exec(rest)?.[0];
    if (!name) throw new Error(`${where}: bad label name at "${rest}"`);
    if (name.startsWith('__')) throw new Error(`${where}: label ${name} is reserved`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    rest = rest.slice(name.length);
    if (!rest.startsWith('="')) throw new Error(`${where}: expected =" after ${name}`);
    rest = rest.slice(2);
    let value = '';
    for (;;) {
      const c = rest[0];
      if (c === undefined) throw new Error(`${where}: unterminated value of ${name}`);
      rest = rest.slice(1);
      if (c === '"') break;
      if (c === '\\') {
        const e = rest[0];
        rest = rest.slice(1);
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${e} in ${name}`);
      } else {
        value += c;
      }
    }
    labels[name] = value;
    if (rest.startsWith(',')) rest = rest.slice(1);
    else if (rest.startsWith('}')) return { labels, rest: rest.slice(1) };
    else throw new Error(`${where}: expected , or } after ${name}`);
  }
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, e: string) => {
    if (e === '\\') return '\\';
    if (e === 'n') return '\n';
    throw new Error(`${where}: bad escape in HELP`);
  });
}

function seriesId(s: Sample, without?: string): string {
  return JSON.stringify([s.name, Object.entries(s.labels).filter(([k]) => k !== without).sort()]);
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const key = JSON.stringify(Object.entries(s.labels).filter(([k]) => k !== 'le').sort());
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (s.labels.le === undefined) throw new Error(`${f.name}: a bucket without le`);
      g.buckets.push([parseFloatValue(s.labels.le, f.name), s.value]);
    } else {
      if ('le' in s.labels) throw new Error(`${f.name}: le on ${s.name}`);
      if (s.name === `${f.name}_sum`) g.sum = s.value;
      else g.count = s.value;
    }
  }
  for (const [key, g] of groups) {
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) throw new Error(`${f.name}${key}: le not increasing`);
      if (g.buckets[i][1] < g.buckets[i - 1][1]) throw new Error(`${f.name}${key}: buckets not cumulative`);
    }
    const inf = g.buckets.at(-1);
    if (!inf || inf[0] !== Infinity) throw new Error(`${f.name}${key}: no le="+Inf" bucket`);
    if (g.sum === undefined || g.count === undefined) throw new Error(`${f.name}${key}: _sum or _count missing`);
    if (g.count !== inf[1]) throw new Error(`${f.name}${key}: _count ${g.count} is not the +Inf bucket ${inf[1]}`);
  }
}

/** Parses an exposition, or throws naming the first thing that breaks the format. */
export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: Family | null = null;
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1}`;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
        if (!m) throw new Error(`${where}: a comment that is neither HELP nor TYPE`);
        const [, kind, name, rest] = m;
        if (metricName.exec(name)?.[0] !== name) throw new Error(`${where}: bad metric name ${name}`);
        if (kind === 'HELP') {
          if (families.has(name)) throw new Error(`${where}: family ${name} appears twice`);
          current = { name, help: unescapeHelp(rest, where), type: '', samples: [] };
          families.set(name, current);
        } else {
          if (!current || current.name !== name) throw new Error(`${where}: TYPE ${name} without its HELP just before`);
          if (current.type !== '') throw new Error(`${where}: a second TYPE for ${name}`);
          if (!types.includes(rest)) throw new Error(`${where}: unknown type ${rest}`);
          if (current.samples.length > 0) throw new Error(`${where}: TYPE after samples`);
          current.type = rest;
        }
        return;
      }
      if (line === '') throw new Error(`${where}: empty line`);
      const name = metricName.exec(line)?.[0];
      if (!name) throw new Error(`${where}: bad sample name in "${line}"`);
      let rest = line.slice(name.length);
      let labels: Record<string, string> = {};
      if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, where));
      const m = /^ (\S+)( -?\d+)?$/.exec(rest);
      if (!m) throw new Error(`${where}: expected " value [timestamp]" in "${line}"`);
      const sample = { name, labels, value: parseFloatValue(m[1], where) };
      const family: Family | null = current;
      if (!family || family.type === '') throw new Error(`${where}: sample ${name} before its family's HELP and TYPE`);
      const allowed = family.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => family.name + s) : [family.name];
      if (!allowed.includes(name)) throw new Error(`${where}: sample ${name} is not of family ${family.name} (families must be contiguous)`);
      if (family.type === 'counter' && !(sample.value >= 0)) throw new Error(`${where}: counter ${name} is ${m[1]}`);
      const id = seriesId(sample);
      if (series.has(id)) throw new Error(`${where}: series ${id} twice`);
      series.add(id);
      family.samples.push(sample);
    });
  for (const f of families.values()) {
    if (f.type === '') throw new Error(`family ${f.name} has no TYPE`);
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end in _total`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    const found = f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
    if (found.length === 1) return found[0].value;
  }
  return undefined;
}

/** GET /metrics from an admin API's URL. */
export async function scrape(url: string): Promise<{ contentType: string; text: string }> {
  const res = await within(
    new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${url}/metrics`, resolve).once('error', reject)),
    10_000,
    'GET /metrics',
  );
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return { contentType: String(res.headers['content-type']), text: Buffer.concat(chunks).toString('utf8') };
}
