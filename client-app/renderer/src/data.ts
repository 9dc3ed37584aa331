// The participant's data: pick the files, then read the report fedit made of them before any
// training: what was read, what was left out and why (file:line), what looks odd, how long the
// examples are, and a few of them exactly as the trainer sees them.

import type { AppState, DataSelection } from '../../src/app/api.ts';
import { h } from './dom.ts';
import { picker } from './picker.ts';
import { memo, type Ui, type View } from './ui.ts';
import { count, num } from './words.ts';

type DatasetReport = DataSelection['report'];
type SkipCode = DatasetReport['skipped']['rows'][number]['code'];
type TokenReport = NonNullable<DatasetReport['tokens']>;

const SKIP_WORDS: Record<SkipCode, string> = {
  'invalid-json': 'not valid JSON',
  'invalid-utf8': 'not valid text (UTF-8)',
  'not-an-object': 'not a record',
  'missing-field': 'a field is missing',
  'empty-field': 'a field is empty',
  'wrong-type': 'a field has the wrong type',
  'unknown-role': 'an unknown speaker',
  'bad-turn-order': 'turns out of order',
  'no-response': 'no response to learn',
  duplicate: 'repeats an earlier record',
  'truncated-away': 'too long, no room left for the response',
  template: 'the chat template does not fit',
};

/**
 * Where a row is, "facts.jsonl:3": the file's name alone when the names are unique (the Files table
 * has the full paths), so a narrow column does not break a long path in the middle of a name.
 */
function locator(report: DatasetReport): (s: { file: string; line: number }, column?: number) => string {
  const name = (path: string) => path.split(/[\\/]/).pop() ?? path;
  const names = report.files.map((f) => name(f.path));
  const short = new Set(names).size === names.length;
  return (s, column) => {
    const file = short ? name(s.file) : s.file;
    return column === undefined ? `${file}:${s.line}` : `${file}:${s.line}:${column}`;
  };
}

/** "… and 12 more", when a listing shows only the first rows. */
const more = (shown: number, total: number) =>
  total > shown ? h('p', { class: 'muted' }, `… and ${num(total - shown)} more`) : null;

function tile(label: string, value: number, tone: string, testid: string): HTMLElement {
  return h(
    'div',
    { class: `tile ${tone}`, testid },
    h('span', { class: 'tile-value' }, num(value)),
    h('span', { class: 'tile-label' }, label),
  );
}

function filesTable(report: DatasetReport): HTMLElement {
  return h(
    'table',
    { class: 'table', testid: 'data-files' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', null, 'File'),
        h('th', null, 'Format'),
        h('th', { class: 'num' }, 'Records'),
        h('th', { class: 'num' }, 'Usable'),
        h('th', { class: 'num' }, 'Skipped'),
      ),
    ),
    h(
      'tbody',
      null,
      report.files.map((f) =>
        h(
          'tr',
          null,
          h('td', { class: 'path' }, f.path),
          h('td', null, `${f.format}${f.formatDetected ? '' : ' (given)'}`),
          h('td', { class: 'num' }, num(f.records)),
          h('td', { class: 'num' }, num(f.usable)),
          h('td', { class: 'num' }, num(f.skipped)),
        ),
      ),
    ),
  );
}

function histogram(t: TokenReport): HTMLElement {
  const peak = Math.max(1, ...t.histogram.map((b) => b.count));
  const bars = t.histogram.map((bucket, i) => {
    const label =
      bucket.upTo === null
        ? `over ${t.cutoffLen}`
        : `${i === 0 ? 1 : (t.histogram[i - 1].upTo ?? 0) + 1}–${bucket.upTo}`;
    const fill = h('span', { class: `bar-fill${bucket.upTo === null ? ' over' : ''}` });
    // A data-dependent size: set through the CSSOM, which the CSP allows (a style attribute it would not).
    fill.style.width = `${(100 * bucket.count) / peak}%`;
    return h(
      'div',
      { class: 'bar-row' },
      h('span', { class: 'bar-label' }, label),
      h('span', { class: 'bar-track' }, fill),
      h('span', { class: 'bar-count' }, num(bucket.count)),
    );
  });
  const trainedShare = t.tokens ? Math.round((100 * t.trainedTokens) / t.tokens) : 0;
  return h(
    'div',
    { class: 'card', testid: 'data-histogram' },
    h('h2', null, 'Length of the examples, in tokens'),
    h(
      'p',
      { class: 'muted' },
      'Tokens are the pieces of words the model reads. ' +
        `Shortest ${num(t.min)}, typical ${num(t.median)}, longest ${num(t.max)}. ` +
        `The federation cuts examples at ${num(t.cutoffLen)} tokens.`,
    ),
    h('div', { class: 'bars' }, bars),
    h(
      'ul',
      { class: 'notes' },
      t.truncated
        ? h('li', null, `${count(t.truncated, 'example')} cut to ${num(t.cutoffLen)} tokens (still used).`)
        : null,
      t.truncatedAway
        ? h('li', null, `${count(t.truncatedAway, 'example')} left out: the prompt alone fills the limit.`)
        : null,
      t.lastTurnOnly
        ? h(
            'li',
            null,
            `${count(t.lastTurnOnly, 'conversation')}: only the last answer is learned (the chat template rewrites earlier turns).`,
          )
        : null,
      h(
        'li',
        null,
        `${num(t.tokens)} tokens in all; ${num(t.trainedTokens)} of them (${trainedShare}%) are learned, ` +
          (t.trainOnInputs ? 'prompts included.' : 'the responses.'),
      ),
    ),
  );
}

function skippedRows(report: DatasetReport): HTMLElement {
  const { skipped } = report;
  const at = locator(report);
  const reasons = Object.entries(skipped.byCode)
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
    .map(([code, n]) => `${SKIP_WORDS[code as SkipCode] ?? code} (${num(n ?? 0)})`)
    .join(', ');
  return h(
    'div',
    { class: 'card', testid: 'data-skipped' },
    h('h2', null, `Skipped rows: ${num(skipped.total)}`),
    h('p', { class: 'muted' }, `Left out of training, the rest is used. Why: ${reasons}.`),
    h(
      'table',
      { class: 'table compact' },
      h('thead', null, h('tr', null, h('th', null, 'Where'), h('th', null, 'Why'))),
      h(
        'tbody',
        null,
        skipped.rows.map((row) =>
          h('tr', null, h('td', { class: 'path' }, at(row.source, row.column)), h('td', null, row.reason)),
        ),
      ),
    ),
    more(skipped.rows.length, skipped.total),
  );
}

function duplicates(report: DatasetReport): HTMLElement {
  const d = report.duplicates;
  const at = locator(report);
  return h(
    'div',
    { class: 'card', testid: 'data-duplicates' },
    h('h2', null, `Duplicates: ${num(d.total)}`),
    h(
      'p',
      { class: 'muted' },
      `${count(d.total, 'record')} ${d.total === 1 ? 'repeats' : 'repeat'} an earlier conversation; ` +
        (d.dropped ? 'they are left out.' : 'they are kept, so they weigh more in training.'),
    ),
    h(
      'ul',
      { class: 'rows' },
      d.rows.map((row) =>
        h(
          'li',
          null,
          h('span', { class: 'path' }, at(row.source)),
          ' repeats ',
          h('span', { class: 'path' }, at(row.first)),
        ),
      ),
    ),
    more(d.rows.length, d.total),
  );
}

function chips(testid: string, title: string, note: string, counts: Record<string, number>): HTMLElement {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return h(
    'div',
    { class: 'card', testid },
    h('h2', null, title),
    h('p', { class: 'muted' }, note),
    h(
      'ul',
      { class: 'chips' },
      entries.map(([name, n]) =>
        h('li', null, h('span', null, name), h('span', { class: 'chip-count' }, num(n))),
      ),
    ),
  );
}

type PreviewSegment = DataSelection['previews'][number][number];

/**
 * One example as training sees it: what the model learns to write inside <mark>, the rest plain.
 * The core hands the runs over separately, so nothing in the text itself (« », say) is markup.
 */
export function preview(segments: readonly PreviewSegment[]): HTMLElement {
  const pre = h('pre', { class: 'preview' });
  for (const segment of segments) {
    if (segment.text) pre.append(segment.trained ? h('mark', null, segment.text) : segment.text);
  }
  return pre;
}

/** What the previews wait for: data is tokenized only with the federation's base model chosen. */
interface PreviewReadiness {
  joined: boolean;
  modelOk: boolean;
}

/** Why there is no example to show, in words: the backend's reason, or one from the page's state. */
function noPreviewReason(selection: DataSelection, ready: PreviewReadiness): string {
  if (selection.previewProblem) {
    const why = selection.previewProblem.trim().replace(/\.$/, '');
    return `No examples to show yet. ${why.charAt(0).toUpperCase()}${why.slice(1)}.`;
  }
  if (selection.report.tokens) {
    return selection.report.usable
      ? 'No examples to show.'
      : 'None of your records can be used, so there is no example to show.';
  }
  if (!ready.joined) {
    return 'Join a federation first: examples show here once your data can be prepared the way that federation trains.';
  }
  if (!ready.modelOk) {
    return "Choose the federation's base model first (see Base model): examples show here once your data can be read with that model's vocabulary.";
  }
  return 'No examples to show yet.';
}

function previews(selection: DataSelection, ready: PreviewReadiness): HTMLElement {
  const list = selection.previews;
  // The model's own markers (<|im_start|>, <|eos|>, ...) look like a glitch to someone who has
  // never seen one: name one that is there.
  const marker = list
    .flat()
    .map((segment) => /<\|[^|<>\s]+\|>/.exec(segment.text)?.[0])
    .find((m) => m !== undefined);
  return h(
    'div',
    { class: 'card', testid: 'data-previews' },
    h('h2', null, 'What training sees'),
    h(
      'p',
      { class: 'muted' },
      'A few of your examples exactly as your computer will train on them. ',
      h('mark', null, 'Highlighted'),
      ' is what the model learns to write; the rest is what it reads first.',
      marker ? ' Signs like ' : '',
      marker ? h('code', null, marker) : '',
      marker ? ' are not a mistake: they are how the model marks who speaks and where an answer ends.' : '',
    ),
    list.length
      ? list.map(preview)
      : h(
          'p',
          { class: 'status-box neutral', testid: 'data-no-previews' },
          noPreviewReason(selection, ready),
        ),
  );
}

function dataReport(selection: DataSelection, ready: PreviewReadiness): HTMLElement[] {
  const { report } = selection;
  const parts: (HTMLElement | null)[] = [
    h(
      'div',
      { class: 'tiles', testid: 'data-counts' },
      tile('records read', report.records, 'neutral', 'data-records'),
      tile('ready to train', report.usable, report.usable ? 'ok' : 'problem', 'data-usable'),
      tile('skipped', report.skipped.total, report.skipped.total ? 'warn' : 'neutral', 'data-skipped-count'),
      tile(
        'duplicates',
        report.duplicates.total,
        report.duplicates.total ? 'warn' : 'neutral',
        'data-duplicate-count',
      ),
    ),
    report.usable === 0
      ? h(
          'div',
          { class: 'status-box problem', testid: 'data-unusable' },
          h('p', { class: 'box-title' }, 'Nothing to train on'),
          h('p', null, 'None of the records can be used. The skipped rows below say why.'),
        )
      : null,
    h('div', { class: 'card' }, h('h2', null, 'Files'), filesTable(report)),
    report.tokens ? histogram(report.tokens) : null,
    report.skipped.total ? skippedRows(report) : null,
    report.duplicates.total ? duplicates(report) : null,
    Object.keys(report.emptyFields).length
      ? chips(
          'data-empty-fields',
          'Empty fields',
          'Rows skipped because a required field was empty, by field.',
          report.emptyFields,
        )
      : null,
    report.categories
      ? chips('data-categories', 'Categories', 'Usable examples by category.', report.categories)
      : null,
    previews(selection, ready),
  ];
  return parts.filter((p): p is HTMLElement => p !== null);
}

export function dataView(ui: Ui): View {
  const pick = picker(ui, {
    key: 'data',
    chooseLabel: 'Choose files…',
    fieldLabel: "Or type the files' paths",
    fieldHint: 'JSON or JSON Lines files, one path per line (Alpaca, Dolly, ShareGPT or OpenAI messages).',
    useLabel: 'Use these files',
    multiline: true,
    placeholder: '/home/you/data/my-examples.jsonl',
    busyNote: 'Reading your data… Nothing leaves this computer.',
    pick: (paths) => (paths ? ui.api.chooseData(paths) : ui.api.chooseData()),
  });
  const report = h('div', { class: 'report', testid: 'data-report' });
  // Keyed on what the report shows (not the whole state, which changes with every training step).
  type ReportKey = { selection?: DataSelection; joined: boolean; modelOk: boolean };
  const renderReport = memo(({ selection, joined, modelOk }: ReportKey) => {
    report.hidden = !selection;
    report.replaceChildren(...(selection ? dataReport(selection, { joined, modelOk }) : []));
  });

  const root = h(
    'section',
    { class: 'page', testid: 'section-data' },
    h(
      'header',
      { class: 'page-head' },
      h('h1', null, 'Your data'),
      h(
        'p',
        { class: 'lead' },
        'The examples your computer learns from: instructions and the answers you want. ' +
          'They are read on this computer and never sent anywhere.',
      ),
    ),
    pick.card,
    report,
  );

  return {
    root,
    update(app) {
      pick.update(app.data?.files ?? []);
      renderReport({ selection: app.data, joined: !!app.federation, modelOk: !!app.model?.ok });
    },
  };
}

export function dataHint(app: AppState): string {
  if (!app.data) return 'Not chosen yet';
  return app.data.report.usable ? count(app.data.report.usable, 'example') : 'Nothing usable';
}
