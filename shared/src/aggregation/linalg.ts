// The dense linear algebra product-space LoRA aggregation needs: a Householder QR of a tall
// matrix and the SVD of a small one by one-sided Jacobi (Hestenes). Written for an auditor before
// speed: an auditor in another language repeats the steps below and gets the same bits, so every
// value is binary64, every sum runs in a fixed order, the Jacobi sweep order, convergence test and
// sweep cap are fixed (nothing depends on timing), and the SVD's signs follow a rule. Only + - * /
// and sqrt are used, each correctly rounded (IEEE 754, round to nearest even, no fused
// multiply-add); Math.hypot and other library functions, whose last bit varies, are not.
//
// Matrices are row-major Float64Arrays: entry (i, j) of an m x n matrix X is X[i*n + j]. Below,
// "sum_{i=a..b} f(i)" means S = +0; for i = a, a+1, ..., b: S = S + f(i) (sequential, not
// pairwise), and "x >= 0" is IEEE comparison (true for -0).
//
// householderQr(X, m, n), p = min(m, n): X = Q R, Q m x p with orthonormal columns (kept as the
// reflectors H_0 .. H_{p-1}), R p x n upper trapezoidal. Y = a copy of X. For k = 0 .. p-1:
//     norm = sqrt(sum_{i=k..m-1} Y[i,k] * Y[i,k]); if norm = 0, H_k = I and nothing changes. Else:
//     alpha = (Y[k,k] >= 0 ? -norm : norm)           (the sign that avoids cancellation in v[k])
//     v_k[k] = Y[k,k] - alpha;  v_k[i] = Y[i,k] for i = k+1 .. m-1;  vv_k = sum_{i=k..m-1} v_k[i]^2
//     for j = k+1 .. n-1:  f = (2 * sum_{i=k..m-1} v_k[i] * Y[i,j]) / vv_k
//                          Y[i,j] = Y[i,j] - f * v_k[i]          for i = k .. m-1
//     Y[k,k] = alpha;  Y[i,k] = +0 for i = k+1 .. m-1
//   R[i,j] = Y[i,j] for j >= i, +0 below the diagonal.
// applyQ(QR, X, c): Q X for a p x c matrix X, without forming Q (O(m p c), not O(m p^2)). For each
//   column x of X: y = x followed by m - p zeros; for k = p-1 down to 0 with norm_k != 0:
//   f = (2 * sum_{i=k..m-1} v_k[i] * y[i]) / vv_k;  y[i] = y[i] - f * v_k[i] for i = k .. m-1.
//   explicitQ(QR) = applyQ(QR, the p x p identity, p).
//
// jacobiSvd(X, m, n), p = min(m, n): X = U diag(s) V^T, U m x p, V n x p, s descending.
//   If m >= n, G = a copy of X (r = m rows, c = n columns); else G = X^T (r = n, c = m) and, at
//   the end, U and V swap roles. V' = the c x c identity. Sweeps, at most JACOBI_MAX_SWEEPS:
//     rotated = false; for a = 0 .. c-2, for b = a+1 .. c-1 (this cyclic order):
//       al = sum_i G[i,a]^2;  be = sum_i G[i,b]^2;  ga = sum_i G[i,a] * G[i,b]   (i = 0 .. r-1)
//       skip the pair unless |ga| > (JACOBI_TOLERANCE * r) * sqrt(al) * sqrt(be)   (left to right)
//       rotated = true;  ze = (be - al) / (2 * ga)
//       t = (|ze| > 2^500) ? 1 / (2 * ze) : (ze >= 0 ? 1 : -1) / (|ze| + sqrt(1 + ze * ze))
//       cs = 1 / sqrt(1 + t * t);  sn = cs * t
//       for i = 0 .. r-1: (x, y) = (G[i,a], G[i,b]); G[i,a] = cs*x - sn*y; G[i,b] = sn*x + cs*y
//       the same rotation on the columns a, b of V' (i = 0 .. c-1)
//     a sweep with no rotation ends the loop.
//   sigma_j = sqrt(sum_{i=0..r-1} G[i,j]^2); u_j = G[:,j] / sigma_j elementwise (zero if sigma_j = 0).
//   Order: the columns sorted by sigma descending, equal sigmas by ascending j. Then U = [u_j],
//   V = [V'_j], s = [sigma_j] in that order (if m < n: U = [V'_j], V = [u_j]).
//   Signs: for each column j, x = column j of U, or of V if that column of U is all zero; find the
//   first index of the largest |x_i|; if that x_i < 0, negate column j of U and of V (exact).
//   A column of U or V whose singular value is 0 is zero where it comes from G; the rest of the
//   result is exactly as specified, so it is deterministic even then.

/** The most cyclic Jacobi sweeps; the loop stops earlier once a sweep rotates nothing (2-18 sweeps in tests). */
export const JACOBI_MAX_SWEEPS = 60;
/** Per-row relative tolerance of the Jacobi convergence test (times the row count r): 2^-53. */
export const JACOBI_TOLERANCE = 2 ** -53;
// Beyond this |zeta|, zeta * zeta could overflow; 1 / (2 zeta) is then t to within rounding.
const ZETA_LIMIT = 2 ** 500;

export interface QrFactors {
  /** p x n, upper trapezoidal, row-major. */
  r: Float64Array;
  /** min(m, n). */
  p: number;
  /** Rows of the factorised matrix (and of Q). */
  m: number;
  /** The Householder reflectors H_0 .. H_{p-1} whose product is Q (undefined: H_k = I). */
  reflectors: readonly (Reflector | undefined)[];
}

export interface SvdFactors {
  /** m x p, row-major; column j is the left singular vector of s[j]. */
  u: Float64Array;
  /** p singular values, descending. */
  s: Float64Array;
  /** n x p, row-major; column j is the right singular vector of s[j]. */
  v: Float64Array;
  /** min(m, n). */
  p: number;
  /** Sweeps run, the last being the one that rotated nothing unless the cap was reached. */
  sweeps: number;
}

/** Householder QR of the m x n matrix `x`: x = Q r, Q kept as reflectors (exact arithmetic in the header). */
export function householderQr(x: Float64Array, m: number, n: number): QrFactors {
  checkMatrix(x, m, n);
  const p = Math.min(m, n);
  // Column-major working copy: column j is y[j*m .. j*m + m - 1], so every sum reads contiguous memory.
  const y = transpose(x, m, n);
  const reflectors: (Reflector | undefined)[] = [];
  for (let k = 0; k < p; k++) {
    const column = k * m;
    let squares = 0;
    for (let i = k; i < m; i++) squares += y[column + i] * y[column + i];
    const norm = Math.sqrt(squares);
    if (norm === 0) {
      reflectors.push(undefined);
      continue;
    }
    const alpha = y[column + k] >= 0 ? -norm : norm;
    const v = y.slice(column + k, column + m);
    v[0] = y[column + k] - alpha;
    let vv = 0;
    for (let i = 0; i < v.length; i++) vv += v[i] * v[i];
    const reflector = { v, vv, k };
    for (let j = k + 1; j < n; j++) reflect(reflector, y, j * m);
    y[column + k] = alpha;
    for (let i = k + 1; i < m; i++) y[column + i] = 0;
    reflectors.push(reflector);
  }
  const r = new Float64Array(p * n);
  for (let i = 0; i < p; i++) for (let j = i; j < n; j++) r[i * n + j] = y[j * m + i];
  return { r, p, m, reflectors };
}

/** Q X, m x cols row-major, for a row-major p x cols matrix X (exact arithmetic in the header). */
export function applyQ({ p, m, reflectors }: QrFactors, x: Float64Array, cols: number): Float64Array {
  checkMatrix(x, p, cols);
  const y = new Float64Array(m * cols); // column-major: column c is y[c*m .. c*m + m - 1]
  for (let c = 0; c < cols; c++) for (let i = 0; i < p; i++) y[c * m + i] = x[i * cols + c];
  for (let k = p - 1; k >= 0; k--) {
    const reflector = reflectors[k];
    if (reflector) for (let c = 0; c < cols; c++) reflect(reflector, y, c * m);
  }
  return transpose(y, cols, m);
}

/** Q itself: m x p with orthonormal columns, row-major. */
export function explicitQ(qr: QrFactors): Float64Array {
  const identity = new Float64Array(qr.p * qr.p);
  for (let j = 0; j < qr.p; j++) identity[j * qr.p + j] = 1;
  return applyQ(qr, identity, qr.p);
}

export interface Reflector {
  /** v_k[k .. m-1]. */
  v: Float64Array;
  vv: number;
  k: number;
}

/** Applies H_k = I - 2 v v^T / (v^T v) to the column-major column starting at `start`. */
function reflect({ v, vv, k }: Reflector, data: Float64Array, start: number): void {
  const base = start + k;
  let dot = 0;
  for (let i = 0; i < v.length; i++) dot += v[i] * data[base + i];
  const f = (2 * dot) / vv;
  for (let i = 0; i < v.length; i++) data[base + i] -= f * v[i];
}

/** SVD of the m x n matrix `x` by one-sided Jacobi: x = u diag(s) v^T (exact arithmetic in the header). */
export function jacobiSvd(x: Float64Array, m: number, n: number): SvdFactors {
  checkMatrix(x, m, n);
  const tall = m >= n;
  const rows = tall ? m : n;
  const cols = tall ? n : m;
  // Column-major G: G's columns are X's columns (tall) or X's rows (wide), contiguous either way.
  const g = tall ? transpose(x, m, n) : x.slice();
  const { rotations, sweeps } = orthogonalizeColumns(g, rows, cols);
  const sigma = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    let squares = 0;
    for (let i = 0; i < rows; i++) squares += g[j * rows + i] * g[j * rows + i];
    sigma[j] = Math.sqrt(squares);
  }
  const order = [...sigma.keys()].sort((a, b) => sigma[b] - sigma[a] || a - b);
  const fromG = new Float64Array(rows * cols); // row-major rows x cols: the normalised columns of G
  const fromRotations = new Float64Array(cols * cols); // row-major cols x cols: V' reordered
  const s = new Float64Array(cols);
  order.forEach((j, position) => {
    s[position] = sigma[j];
    if (sigma[j] > 0) for (let i = 0; i < rows; i++) fromG[i * cols + position] = g[j * rows + i] / sigma[j];
    for (let i = 0; i < cols; i++) fromRotations[i * cols + position] = rotations[j * cols + i];
  });
  const u = tall ? fromG : fromRotations;
  const v = tall ? fromRotations : fromG;
  fixSigns(u, v, m, n, cols);
  return { u, s, v, p: cols, sweeps };
}

/** Cyclic one-sided Jacobi on column-major g (rows x cols, rows >= cols); returns V' column-major. */
function orthogonalizeColumns(
  g: Float64Array,
  rows: number,
  cols: number,
): { rotations: Float64Array; sweeps: number } {
  const rotations = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) rotations[j * cols + j] = 1;
  const tolerance = JACOBI_TOLERANCE * rows;
  let sweeps = 0;
  while (sweeps < JACOBI_MAX_SWEEPS) {
    sweeps++;
    let rotated = false;
    for (let a = 0; a < cols - 1; a++) {
      for (let b = a + 1; b < cols; b++) {
        const ca = a * rows;
        const cb = b * rows;
        let al = 0;
        let be = 0;
        let ga = 0;
        for (let i = 0; i < rows; i++) {
          const x = g[ca + i];
          const y = g[cb + i];
          al += x * x;
          be += y * y;
          ga += x * y;
        }
        if (!(Math.abs(ga) > tolerance * Math.sqrt(al) * Math.sqrt(be))) continue;
        rotated = true;
        const ze = (be - al) / (2 * ga);
        const t =
          Math.abs(ze) > ZETA_LIMIT
            ? 1 / (2 * ze)
            : (ze >= 0 ? 1 : -1) / (Math.abs(ze) + Math.sqrt(1 + ze * ze));
        const cs = 1 / Math.sqrt(1 + t * t);
        const sn = cs * t;
        rotate(g, ca, cb, rows, cs, sn);
        rotate(rotations, a * cols, b * cols, cols, cs, sn);
      }
    }
    if (!rotated) break;
  }
  return { rotations, sweeps };
}

function rotate(data: Float64Array, ca: number, cb: number, length: number, cs: number, sn: number): void {
  for (let i = 0; i < length; i++) {
    const x = data[ca + i];
    const y = data[cb + i];
    data[ca + i] = cs * x - sn * y;
    data[cb + i] = sn * x + cs * y;
  }
}

/** The sign rule: the largest-|x| entry (first on ties) of each left vector, or right if it is zero, is positive. */
function fixSigns(u: Float64Array, v: Float64Array, m: number, n: number, p: number): void {
  for (let j = 0; j < p; j++) {
    let deciding = largestEntry(u, m, p, j);
    if (deciding === 0) deciding = largestEntry(v, n, p, j);
    if (deciding >= 0) continue;
    for (let i = 0; i < m; i++) u[i * p + j] = -u[i * p + j];
    for (let i = 0; i < n; i++) v[i * p + j] = -v[i * p + j];
  }
}

/** The entry of largest magnitude in column j of a row-major rows x cols matrix, the first on ties. */
function largestEntry(a: Float64Array, rows: number, cols: number, j: number): number {
  let best = 0;
  for (let i = 0; i < rows; i++) if (Math.abs(a[i * cols + j]) > Math.abs(best)) best = a[i * cols + j];
  return best;
}

/** The n x m transpose of a row-major m x n matrix (equally: its column-major copy). */
export function transpose(x: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = x[i * n + j];
  return t;
}

function checkMatrix(x: Float64Array, m: number, n: number): void {
  if (!Number.isSafeInteger(m) || m <= 0) throw new RangeError(`rows m must be a positive integer, got ${m}`);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new RangeError(`columns n must be a positive integer, got ${n}`);
  if (x.length !== m * n) {
    throw new RangeError(`matrix has ${x.length} values; an ${m} x ${n} matrix has ${m * n}`);
  }
}
