// The loss of the current round's local steps as a small line chart, in SVG built here (every
// size and position an attribute: the CSP allows no inline style).

import { svg } from './dom.ts';

const WIDTH = 560;
const HEIGHT = 180;
const PAD = { left: 52, right: 16, top: 14, bottom: 30 };

/** A short, readable label for a loss value. */
// Enough significant digits that neighbouring axis labels differ, for losses near 0 too.
const label = (x: number): string =>
  x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 0.1 || x === 0 ? x.toFixed(2) : x.toPrecision(2);

export function lossChart(losses: readonly number[]): SVGSVGElement {
  const values = losses.filter((x) => Number.isFinite(x));
  const chart = svg('svg', {
    class: 'loss-chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': values.length
      ? `Loss over ${values.length} steps, now ${label(values[values.length - 1])}`
      : 'No loss yet',
  });
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!values.length) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const x = (i: number) => PAD.left + (values.length > 1 ? (plotW * i) / (values.length - 1) : plotW / 2);
  const y = (v: number) => PAD.top + (plotH * (hi - v)) / (hi - lo);

  // Three horizontal guides with their values (none before there is a value), the steps below.
  for (const v of [hi, (hi + lo) / 2, lo]) {
    chart.append(svg('line', { class: 'grid', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
    if (values.length) {
      chart.append(
        svg('text', { class: 'axis', x: PAD.left - 8, y: y(v) + 4, 'text-anchor': 'end' }, label(v)),
      );
    }
  }
  if (values.length) {
    chart.append(
      svg('text', { class: 'axis', x: PAD.left, y: HEIGHT - 6 }, 'step 1'),
      svg(
        'text',
        { class: 'axis', x: WIDTH - PAD.right, y: HEIGHT - 6, 'text-anchor': 'end' },
        `step ${values.length}`,
      ),
      svg('polyline', {
        class: 'line',
        fill: 'none',
        points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
      }),
      svg('circle', { class: 'dot', cx: x(values.length - 1), cy: y(values[values.length - 1]), r: 4 }),
    );
  }
  return chart;
}
