// The loss of the current round's local steps as a small line chart, in SVG built here (every
// size and position an attribute: the CSP allows no inline style).
//
// Loss often falls by orders of magnitude within a round (2.3 at the first step, 0.0001 at the
// last), so the y axis is logarithmic whenever the values span more than a factor of ten: on a
// linear axis everything after the first few steps would be a flat line along the bottom.

import { svg } from './dom.ts';

const WIDTH = 560;
const HEIGHT = 190;
const PAD = { right: 16, top: 14, bottom: 30 };
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

export function lossChart(losses: readonly number[]): SVGSVGElement {
  const values = losses.filter((x) => Number.isFinite(x));
  const scale = scaleFor(values);
  const labels = scale.ticks.map(axisLabel);
  // Room for the widest label, so none is cut at the left edge.
  const left = 14 + CHAR_WIDTH * Math.max(3, ...labels.map((l) => l.length));
  const chart = svg('svg', {
    class: 'loss-chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': values.length
      ? `Loss over ${values.length} steps${scale.log ? ' (logarithmic scale)' : ''}, last step ${formatLoss(values[values.length - 1])}`
      : 'No loss yet',
  });
  const plotW = WIDTH - left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const position = (v: number) =>
    scale.log
      ? (Math.log10(scale.hi) - Math.log10(v)) / (Math.log10(scale.hi) - Math.log10(scale.lo))
      : (scale.hi - v) / (scale.hi - scale.lo);
  const x = (i: number) => left + (values.length > 1 ? (plotW * i) / (values.length - 1) : plotW / 2);
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
    svg('text', { class: 'axis', x: left, y: HEIGHT - 6 }, 'step 1'),
    svg(
      'text',
      { class: 'axis', x: WIDTH - PAD.right, y: HEIGHT - 6, 'text-anchor': 'end' },
      `step ${values.length}`,
    ),
    svg(
      'text',
      { class: 'axis', x: (left + WIDTH - PAD.right) / 2, y: HEIGHT - 6, 'text-anchor': 'middle' },
      scale.log ? 'loss, log scale (each line is 10× the one below)' : 'loss',
    ),
    svg('polyline', {
      class: 'line',
      fill: 'none',
      points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
    }),
    svg('circle', { class: 'dot', cx: x(values.length - 1), cy: y(values[values.length - 1]), r: 4 }),
  );
  return chart;
}
