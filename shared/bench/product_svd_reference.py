"""An auditor's reimplementation of product-space aggregation, written from the exact-arithmetic
headers of shared/src/aggregation/linalg.ts and product-svd.ts alone (plain Python floats are
binary64; math.sqrt is the correctly rounded square root; struct's 'f' rounds to float32 like a C
cast). It recomputes the cases pinned in shared/test/aggregation/product-svd.test.ts (float32
result) and linalg.test.ts (binary64 QR and SVD factors) and prints their SHA-256, which must
equal the pins:

    python3 shared/bench/product_svd_reference.py
"""

import hashlib
import math
import struct

M32 = 0xFFFFFFFF


def mulberry32(length, seed, scale=1.0):
    """The tests' generator: float32(scale * (u32 / 2^31 - 1))."""
    state = seed & M32
    out = []
    for _ in range(length):
        state = (state + 0x6D2B79F5) & M32
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        t = t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32)
        u = (t ^ (t >> 14)) & M32
        out.append(f32(scale * (u / 2**31 - 1)))
    return out


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def seq_sum(terms):
    s = 0.0
    for term in terms:
        s = s + term
    return s


def householder_qr(x, m, n):
    """Returns (R as p x n lists, p, reflectors [(v, vv, k) or None])."""
    y = [list(row) for row in x]
    p = min(m, n)
    reflectors = []
    for k in range(p):
        norm = math.sqrt(seq_sum(y[i][k] * y[i][k] for i in range(k, m)))
        if norm == 0:
            reflectors.append(None)
            continue
        alpha = -norm if y[k][k] >= 0 else norm
        v = [y[k][k] - alpha] + [y[i][k] for i in range(k + 1, m)]
        vv = seq_sum(e * e for e in v)
        for j in range(k + 1, n):
            f = (2 * seq_sum(v[i - k] * y[i][j] for i in range(k, m))) / vv
            for i in range(k, m):
                y[i][j] = y[i][j] - f * v[i - k]
        y[k][k] = alpha
        for i in range(k + 1, m):
            y[i][k] = 0.0
        reflectors.append((v, vv, k))
    r = [[y[i][j] if j >= i else 0.0 for j in range(n)] for i in range(p)]
    return r, p, reflectors


def apply_q(reflectors, m, p, x_cols):
    """Q X, X given as a list of columns of length p; returns columns of length m."""
    out = []
    for col in x_cols:
        y = list(col) + [0.0] * (m - p)
        for k in range(p - 1, -1, -1):
            if reflectors[k] is None:
                continue
            v, vv, _ = reflectors[k]
            f = (2 * seq_sum(v[i - k] * y[i] for i in range(k, m))) / vv
            for i in range(k, m):
                y[i] = y[i] - f * v[i - k]
        out.append(y)
    return out


def jacobi_svd(x, m, n, max_sweeps=60, tolerance=2.0**-53):
    """Returns (U columns, s, V columns), each column a list."""
    tall = m >= n
    r, c = (m, n) if tall else (n, m)
    g = [[x[i][j] for i in range(m)] for j in range(n)] if tall else [list(row) for row in x]
    vp = [[1.0 if i == j else 0.0 for i in range(c)] for j in range(c)]
    tol = tolerance * r
    for _ in range(max_sweeps):
        rotated = False
        for a in range(c - 1):
            for b in range(a + 1, c):
                ga_, gb = g[a], g[b]
                al = seq_sum(e * e for e in ga_)
                be = seq_sum(e * e for e in gb)
                ga = seq_sum(ga_[i] * gb[i] for i in range(r))
                if not (abs(ga) > tol * math.sqrt(al) * math.sqrt(be)):
                    continue
                rotated = True
                ze = (be - al) / (2 * ga)
                if abs(ze) > 2.0**500:
                    t = 1 / (2 * ze)
                else:
                    t = (1.0 if ze >= 0 else -1.0) / (abs(ze) + math.sqrt(1 + ze * ze))
                cs = 1 / math.sqrt(1 + t * t)
                sn = cs * t
                for col_a, col_b in ((ga_, gb), (vp[a], vp[b])):
                    for i in range(len(col_a)):
                        xa, xb = col_a[i], col_b[i]
                        col_a[i] = cs * xa - sn * xb
                        col_b[i] = sn * xa + cs * xb
        if not rotated:
            break
    sigma = [math.sqrt(seq_sum(e * e for e in g[j])) for j in range(c)]
    order = sorted(range(c), key=lambda j: (-sigma[j], j))
    from_g = [[e / sigma[j] for e in g[j]] if sigma[j] > 0 else [0.0] * r for j in order]
    from_v = [list(vp[j]) for j in order]
    s = [sigma[j] for j in order]
    u, v = (from_g, from_v) if tall else (from_v, from_g)
    for j in range(c):
        deciding = largest(u[j])
        if deciding == 0:
            deciding = largest(v[j])
        if deciding < 0:
            u[j] = [-e for e in u[j]]
            v[j] = [-e for e in v[j]]
    return u, s, v


def largest(column):
    best = 0.0
    for e in column:
        if abs(e) > abs(best):
            best = e
    return best


def product_svd(pairs, in_f, out_f, rank, scale_out, split="balanced"):
    """pairs: (A rows x in flat, B out x rows flat, rows, scale, weight). Returns (A_new, B_new) flat float32 values."""
    big_r = sum(pr[2] for pr in pairs)
    bs = [[0.0] * big_r for _ in range(out_f)]
    ast = [[0.0] * big_r for _ in range(in_f)]
    offset = 0
    for a, b, rk, s, w in pairs:
        c = w * s
        for i in range(out_f):
            for j in range(rk):
                bs[i][offset + j] = c * b[i * rk + j]
        for j in range(rk):
            for i in range(in_f):
                ast[i][offset + j] = a[j * in_f + i]
        offset += rk
    rb, pb, refl_b = householder_qr(bs, out_f, big_r)
    ra, pa, refl_a = householder_qr(ast, in_f, big_r)
    core = [[seq_sum(rb[i][t] * ra[j][t] for t in range(big_r)) for j in range(pa)] for i in range(pb)]
    u, s, v = jacobi_svd(core, pb, pa)
    den = seq_sum(pr[4] for pr in pairs) * scale_out
    kept = min(rank, len(s))
    ub = apply_q(refl_b, out_f, pb, u[:kept])
    va = apply_q(refl_a, in_f, pa, v[:kept])
    b_new = [0.0] * (out_f * rank)
    a_new = [0.0] * (rank * in_f)
    for j in range(kept):
        if split == "balanced":
            d = math.sqrt(s[j] / den)
            for i in range(out_f):
                b_new[i * rank + j] = f32(ub[j][i] * d)
            for i in range(in_f):
                a_new[j * in_f + i] = f32(d * va[j][i])
        else:  # orthonormal-a
            e = s[j] / den
            for i in range(out_f):
                b_new[i * rank + j] = f32(ub[j][i] * e)
            for i in range(in_f):
                a_new[j * in_f + i] = f32(va[j][i])
    return a_new, b_new


def pinned_case(split):
    """product-svd.test.ts: SCHEMA (down_proj in 10 out 6, q_proj in 6 out 8, rank 4, alpha 8)."""
    modules = [("down_proj", 10, 6), ("q_proj", 6, 8)]

    def update(rk, seed):
        return {
            "down_proj": (mulberry32(rk * 10, seed), mulberry32(6 * rk, seed + 1, 0.1)),
            "q_proj": (mulberry32(rk * 6, seed + 2), mulberry32(8 * rk, seed + 3, 0.1)),
        }

    updates = [(update(2, 4), 2, 2), (update(4, 8), 4, 3)]
    digest = hashlib.sha256()
    for name, in_f, out_f in modules:
        pairs = [(u[name][0], u[name][1], rk, 8 / rk, w) for u, rk, w in updates]
        a_new, b_new = product_svd(pairs, in_f, out_f, 4, 8 / 4, split)
        digest.update(struct.pack(f"<{len(a_new)}f", *a_new))
        digest.update(struct.pack(f"<{len(b_new)}f", *b_new))
    return digest.hexdigest()


def linalg_case():
    """linalg.test.ts: QR and SVD of X[i, j] = ((k * 7919) % 113) / 113 - 0.5, k = i * n + j, 9 x 6 and 5 x 8."""
    digest = hashlib.sha256()
    for m, n in ((9, 6), (5, 8)):
        x = [[((i * n + j) * 7919 % 113) / 113 - 0.5 for j in range(n)] for i in range(m)]
        r, p, reflectors = householder_qr(x, m, n)
        identity = [[1.0 if i == j else 0.0 for i in range(p)] for j in range(p)]
        q_cols = apply_q(reflectors, m, p, identity)
        u, s, v = jacobi_svd(x, m, n)
        values = [e for row in r for e in row]
        values += [q_cols[j][i] for i in range(m) for j in range(p)]
        values += [u[j][i] for i in range(m) for j in range(p)]
        values += s
        values += [v[j][i] for i in range(n) for j in range(p)]
        digest.update(struct.pack(f"<{len(values)}d", *values))
    return digest.hexdigest()


if __name__ == "__main__":
    print("product-svd balanced", pinned_case("balanced"))
    print("product-svd orthonormal-a", pinned_case("orthonormal-a"))
    print("linalg", linalg_case())
