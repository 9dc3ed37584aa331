# Independent re-implementation (python3, math and fractions only) of Mironov et al. 2019's
# RDP of the sampled Gaussian mechanism and Opacus' RDP -> (eps, delta) conversion, run once to
# produce the vectors in rdp.test.ts: exact binomials (math.comb, and fractions.Fraction for
# fractional orders), erfc from math.erfc with the Laurent tail when it underflows.
import math, sys
from fractions import Fraction

def log_add(x, y):
    a, b = min(x, y), max(x, y)
    return b if a == -math.inf else math.log1p(math.exp(a - b)) + b

def log_sub(x, y):
    if y == -math.inf: return x
    if x == y: return -math.inf
    return math.log(math.expm1(x - y)) + y

def log_erfc(x):
    r = math.erfc(x)
    if r > 1e-300: return math.log(r)
    return (-math.log(math.pi) / 2 - math.log(x) - x**2 - .5 * x**-2 + .625 * x**-4
            - 37. / 24. * x**-6 + 353. / 64. * x**-8)

def log_a_int(q, s, a):
    acc = -math.inf
    for i in range(a + 1):
        acc = log_add(acc, math.log(math.comb(a, i)) + i * math.log(q) + (a - i) * math.log(1 - q)
                      + (i * i - i) / (2 * s * s))
    return acc

def log_a_frac(q, s, a):
    a0 = a1 = -math.inf
    z0 = s * s * math.log(1 / q - 1) + .5
    coef = Fraction(1); fa = Fraction(a); i = 0
    while True:
        if i > 0: coef = coef * (fa - i + 1) / i
        lc = math.log(abs(float(coef))); j = a - i
        s0 = lc + i * math.log(q) + j * math.log(1 - q) + (i * i - i) / (2 * s * s) + math.log(.5) + log_erfc((i - z0) / (math.sqrt(2) * s))
        s1 = lc + j * math.log(q) + i * math.log(1 - q) + (j * j - j) / (2 * s * s) + math.log(.5) + log_erfc((z0 - j) / (math.sqrt(2) * s))
        if coef > 0: a0, a1 = log_add(a0, s0), log_add(a1, s1)
        else: a0, a1 = log_sub(a0, s0), log_sub(a1, s1)
        i += 1
        if max(s0, s1) < -30: return log_add(a0, a1)

def rdp(q, s, a):
    if q == 0: return 0.0
    if q == 1: return a / (2 * s * s)
    la = log_a_int(q, s, int(a)) if float(a).is_integer() else log_a_frac(q, s, a)
    return la / (a - 1)

ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))

def spent(rdps, delta, orders=ORDERS):
    best = (math.inf, None)
    for a, r in zip(orders, rdps):
        e = r - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a)
        if e < best[0]: best = (e, a)
    return best

if __name__ == '__main__':
    for (q, s, a) in [(0.01, 2.5, 1.5), (0.01, 2.5, 2.5), (0.01, 2.5, 5), (0.01, 2.5, 50), (0.01, 2.5, 100),
                      (0.1, 2, 5), (1e-3, 10, 1.1), (1e-3, 10, 63), (0.05, 0.8, 3.7), (0.3, 1.2, 10.9), (0.5, 5, 32),
                      (0.01, 5, 1024), (0.2, 3, 1000), (0.01, 5, 512.5)]:
        print('rdp', q, s, a, repr(rdp(q, s, a)))
    for x in [-3.5, -1.0, -0.3, 0, 0.5, 0.99, 1, 2.5, 10, 26, 40]:
        print('logerfc', x, repr(log_erfc(x)))
    for (q, s, steps, d) in [(0.01, 1.1, 1000, 1e-5), (256 / 60000, 1.1, 14060, 1e-5), (0.1, 1.0, 100, 1e-6), (50 / 1000, 0.8, 40, 1e-5)]:
        r = [rdp(q, s, a) * steps for a in ORDERS]
        print('eps', q, s, steps, d, repr(spent(r, d)))
