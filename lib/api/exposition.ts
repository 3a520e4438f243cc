// The Prometheus text exposition format 0.0.4: families, samples and histograms as lines.
// Shared by every part of /metrics (lib/api/metrics.ts and the files it draws on).

export type Labels = ReadonlyArray<readonly [name: string, value: string]>;
export type MetricType = 'counter' | 'gauge' | 'histogram';
export interface Sample {
  /** A histogram's `_bucket`, `_sum` or `_count`. */
  readonly suffix?: string;
  readonly labels: Labels;
  readonly value: number;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels): string {
  if (labels.length === 0) return '';
  return `{${labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** Appends one family: HELP, TYPE, then its samples. */
export function writeFamily(out: string[], name: string, type: MetricType, help: string, samples: Iterable<Sample>): void {
  out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  for (const s of samples) out.push(`${name}${s.suffix ?? ''}${formatLabels(s.labels)} ${formatValue(s.value)}`);
}

/**
 * One histogram series' samples: cumulative `_bucket`s (one per bound, then `+Inf`), `_sum` and
 * `_count`. `buckets` holds a count per bucket (not cumulative), one per bound and optionally
 * one above every bound; `count` is the total.
 */
export function histogramSamples(labels: Labels, bounds: readonly number[], buckets: readonly number[], sum: number, count: number): Sample[] {
  let cumulative = 0;
  const samples: Sample[] = bounds.map((le, i) => {
    cumulative += buckets[i] ?? 0;
    return { suffix: '_bucket', labels: [...labels, ['le', String(le)] as const], value: cumulative };
  });
  samples.push({ suffix: '_bucket', labels: [...labels, ['le', '+Inf'] as const], value: count });
  samples.push({ suffix: '_sum', labels, value: sum }, { suffix: '_count', labels, value: count });
  return samples;
}
