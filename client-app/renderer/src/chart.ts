// What the federation learned, as one line chart across rounds, in SVG built here (every size
// and position an attribute: the CSP allows no inline style). Two lines: the loss of the shared
// adapter on this participant's own held-out examples (never trained on), and the federation's
// mean of the same figure over everyone's held-out examples (the round record's, as
// 'round:closed' brings it). Point r is the adapter round r trained from: round 1's is the
// initial adapter, so the curve shows what each round's aggregation did to the next.
//
// Loss can fall by orders of magnitude, so the y axis is logarithmic whenever the values span more
// than a factor of ten. Both axes say what they are: the loss's title above the plot, and under it
// every round's number (every few rounds' when there are many) and what a round's point measures,
// so a single point or a first point (the untrained adapter) is not read as something else.

import { roundTicks } from './chart-ticks.ts';
import { svg } from './dom.ts';

const WIDTH = 560;
const HEIGHT = 214;
const PAD = { right: 16, top: 30, bottom: 46 };
/** The axis labels' font size (styles.css .loss-chart .axis) and a generous width per character. */
const CHAR_WIDTH = 8;

const SUPERSCRIPT: Record<string, string> = {
  '-': '⁻',
  '0': '⁰',
  '1': '¹',
  '2': '²',
  '3': '³',
  '4': '⁴',
  '5': '⁵',
  '6': '⁶',
  '7': '⁷',
  '8': '⁸',
  '9': '⁹',
};
const superscript = (n: number): string => [...String(n)].map((c) => SUPERSCRIPT[c] ?? c).join('');

/**
 * A loss value in at most 3 significant digits, as plain decimals while they stay short ("2.31",
 * "0.0451", "0.000123"), in powers of ten below that ("7.4×10⁻⁶"), however small the loss gets.
 */
export function formatLoss(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const magnitude = Math.abs(x);
  if (magnitude >= 1000) return Math.round(x).toLocaleString('en-US');
  if (magnitude >= 0.0001) return String(Number(x.toPrecision(3)));
  const exponent = Math.floor(Math.log10(magnitude));
  const mantissa = Number((x / 10 ** exponent).toPrecision(2));
  // Rounding can carry the mantissa to 10 (9.96×10⁻⁶ → 10×10⁻⁶): write 1×10⁻⁵ instead.
  const [m, e] = Math.abs(mantissa) >= 10 ? [mantissa / 10, exponent + 1] : [mantissa, exponent];
  return `${m}×10${superscript(e)}`;
}

/** An axis label: like formatLoss, but a whole power of ten below 0.0001 is just "10⁻⁵". */
function axisLabel(x: number): string {
  const label = formatLoss(x);
  return label.startsWith('1×10') ? label.slice(2) : label;
}

interface Scale {
  log: boolean;
  lo: number;
  hi: number;
  /** Where the guides and their labels go. */
  ticks: number[];
}

function scaleFor(values: readonly number[]): Scale {
  if (!values.length) return { log: false, lo: 0, hi: 1, ticks: [] };
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo > 0 && hi / lo > 10) {
    // Whole powers of ten around the values; every other one when there are many.
    const first = Math.floor(Math.log10(lo));
    const last = Math.ceil(Math.log10(hi));
    const stride = last - first > 5 ? 2 : 1;
    const ticks: number[] = [];
    for (let e = last; e >= first; e -= stride) ticks.push(10 ** e);
    return { log: true, lo: 10 ** first, hi: 10 ** last, ticks };
  }
  if (hi - lo < 1e-12) {
    // A flat line: a band around it (a tenth of the value each way, so positive losses stay positive).
    const pad = Math.max(Math.abs(hi) * 0.1, 1e-9);
    [lo, hi] = [lo - pad, hi + pad];
  }
  return { log: false, lo, hi, ticks: [hi, (hi + lo) / 2, lo] };
}

/** One round's point of the learning curve: either figure may be missing (not measured that round). */
export interface CurvePoint {
  round: number;
  /** The shared adapter on your own held-out examples. */
  yours?: number;
  /** The federation's example-weighted mean over everyone's held-out examples. */
  federation?: number;
}

// The participant's own line is drawn last, on top: with one participant the two coincide.
const SERIES = [
  { key: 'federation', cls: 'line federation' },
  { key: 'yours', cls: 'line' },
] as const;

export function learningCurve(points: readonly CurvePoint[]): SVGSVGElement {
  const rounds = points.map((p) => p.round);
  const values = points
    .flatMap((p) => [p.yours, p.federation])
    .filter((v): v is number => v !== undefined && Number.isFinite(v));
  const scale = scaleFor(values);
  const labels = scale.ticks.map(axisLabel);
  // Room for the widest label, so none is cut at the left edge.
  const left = 14 + CHAR_WIDTH * Math.max(3, ...labels.map((l) => l.length));
  const last = points.at(-1);
  const chart = svg('svg', {
    class: 'loss-chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': last
      ? `Held-out loss over ${points.length} rounds${scale.log ? ' (logarithmic scale)' : ''}` +
        (last.yours !== undefined ? `, yours ${formatLoss(last.yours)}` : '') +
        (last.federation !== undefined ? `, federation ${formatLoss(last.federation)}` : '')
      : 'No round measured yet',
  });
  const plotW = WIDTH - left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const position = (v: number) =>
    scale.log
      ? (Math.log10(scale.hi) - Math.log10(v)) / (Math.log10(scale.hi) - Math.log10(scale.lo))
      : (scale.hi - v) / (scale.hi - scale.lo);
  const [first, final] = [Math.min(...rounds), Math.max(...rounds)];
  const x = (round: number) =>
    left + (final > first ? (plotW * (round - first)) / (final - first) : plotW / 2);
  const y = (v: number) => PAD.top + plotH * position(v);

  if (!values.length) {
    for (const f of [0, 0.5, 1]) {
      const at = PAD.top + plotH * f;
      chart.append(svg('line', { class: 'grid', x1: left, x2: WIDTH - PAD.right, y1: at, y2: at }));
    }
    return chart;
  }
  scale.ticks.forEach((v, i) => {
    chart.append(
      svg('line', { class: 'grid', x1: left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      svg('text', { class: 'axis', x: left - 8, y: y(v) + 4, 'text-anchor': 'end' }, labels[i]),
    );
  });
  chart.append(
    svg(
      'text',
      { class: 'axis title', x: left, y: PAD.top - 14 },
      scale.log ? 'held-out loss, log scale (lower is better)' : 'held-out loss (lower is better)',
    ),
    ...roundTicks(first, final).map((round) =>
      svg(
        'text',
        { class: 'axis round-number', x: x(round), y: PAD.top + plotH + 18, 'text-anchor': 'middle' },
        String(round),
      ),
    ),
    svg(
      'text',
      { class: 'axis title', x: (left + WIDTH - PAD.right) / 2, y: HEIGHT - 6, 'text-anchor': 'middle' },
      'round (each point: the shared adapter the round started from)',
    ),
  );
  for (const series of SERIES) {
    const own = points.filter((p) => p[series.key] !== undefined && Number.isFinite(p[series.key]));
    if (!own.length) continue;
    const at = own.map((p) => [x(p.round), y(p[series.key]!)] as const);
    chart.append(
      svg('polyline', {
        class: series.cls,
        'data-series': series.key,
        fill: 'none',
        points: at.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' '),
      }),
      ...own.map((p, i) =>
        svg('circle', {
          class: `dot ${series.key}`,
          cx: at[i]![0],
          cy: at[i]![1],
          r: 3.5,
          // What the dot stands for, for a reader of the SVG (and the tests): its round and loss.
          'data-round': p.round,
          'data-loss': p[series.key]!,
        }),
      ),
    );
  }
  return chart;
}
