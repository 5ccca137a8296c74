"""Calibration: turning a series' raw deviations into a score that means the same on every series.

A raw deviation (a residual over its robust scale) is not comparable across
series: on a quantised, bursty or heavy-tailed series, ten robust sigmas
happen every day; on a Gaussian one, never. So each statistic the detector
watches is ranked against the same statistic's own past on the same series,
causally, with streaming peaks-over-threshold (SPOT, Siffer et al., KDD 2017):

- a high quantile ``u`` of the statistic (the 98th percentile, never below a
  floor) is tracked by stochastic approximation, and how often values exceed it;
- the excesses over ``u`` (the peaks) are summarised by their exponentially
  forgotten moments (memory :data:`MIN_MEMORY` points), and a generalised
  Pareto tail is fitted to them by the method of moments, shrunk towards a
  prior so that a young series is judged conservatively; where the moments
  say the tail is heavy, its shape is also read from the peaks' square roots,
  which the largest few peaks sway far less (see :data:`HEAVY_FIT`);
- the tail probability ``p`` of a new value follows, and with the sampling
  interval, how often a value this unusual occurs on this series' normal data:
  its return period.

The score is a monotone map of the return period onto [0, 1): 0.5 means "once
a month on this series' normal data". So a sensitivity is a false-alarm rate
(high: one per week, medium: one per month, low: one per year), and one
threshold fits every series. Values beyond the alert threshold are learned
only up to it (on a heavy tail, up to a value ten times rarer: :func:`learn_cap`),
so anomalies do not teach the calibrator that anomalies are normal, while a
series whose normal behaviour is wild still gets there.

Pure functions over a small list of floats (kept in the series state).
"""
from __future__ import annotations

import math

Q0 = 0.02                 # the tail starts at the 98th percentile
MIN_STEPS = 250           # the quantile moves by at most 1/(Q0 * MIN_STEPS) tail scales at once
MIN_MEMORY = 3000         # the quantile forgets with at least this memory (points)
PRIOR_PEAKS = 8.0         # pseudo-peaks of the prior tail
G_MIN, G_MAX = -0.2, 0.4  # tail shapes allowed: from lighter than exponential (Gaussian) to Pareto-heavy
#: A tail fitted lighter than exponential (g < 0) ends at a finite value, and past it a value had
#: probability 0 and scored 0.9999, critical: a 4.6-sigma dip on a noisy wave, a burst on tweet counts.
#: The peaks never showed that end (they are learned only up to the alert threshold), so the tail runs
#: on exponentially from where it has fallen to END_B of its height at the threshold u, with the
#: hazard it has there. Medium and high thresholds lie before that point; at g = -0.2, low's moves by
#: 1%.
END_B = 0.25
#: A tail heavier than HEAVY (shape g) is learned up to the value RARER times rarer than the alert
#: threshold, not up to the threshold itself (see :func:`learn_cap`).
HEAVY = 0.1
RARER = 10.0
#: The method of moments reads the shape from the excesses' variance, which rests on the largest few peaks:
#: on a tail heavier than 1/4 (no fourth moment) it is too light, and more so where the largest peaks are
#: capped (:func:`learn_cap`). Exact Pareto peaks of shape 0.3, 60 at a time: the moments' shape has a
#: median of 0.19, and the threshold it gives fires 3.2 times as often as promised. The mean of the peaks'
#: square roots against their mean (R_SQRT) gives 0.25 and 2.7 times. On lighter tails it scatters more
#: than the moments (shape 0 from 60 peaks: 0.13 against 0.11), so it is read only where the moments' shape
#: is above HEAVY_FIT, and the heavier of the two is taken. bench.quality, 48 seeds, anomalies every 8 days:
#: false onsets on bursty counts 0.69 -> 0.64 and on quantised CPU 0.14 -> 0.06, recall and the other shapes
#: as before; bench.calibration, Student t with 3 degrees of freedom: 4.5 -> 4.1 times the promise.
HEAVY_FIT = 0.15
#: ... and where there are enough peaks to call the tail heavy at all: a noiseless series' only peaks are its
#: anomalies, learned up to the threshold, and two of them read as a heavy tail (a square wave then missed a
#: spike of 5% of its range in its third week)
ROOTS_MIN_PEAKS = 20.0
#: (E sqrt(X))^2 / E X of a generalised Pareto tail of shape G_MIN, G_MIN + 0.025, ..., G_MAX (decreasing)
R_SQRT = (0.81878, 0.81517, 0.81141, 0.80751, 0.80345, 0.79921, 0.79480, 0.79020, 0.78540, 0.78038, 0.77513,
          0.76964, 0.76389, 0.75787, 0.75154, 0.74491, 0.73793, 0.73059, 0.72287, 0.71473, 0.70615, 0.69709,
          0.68751, 0.67739, 0.66667)
R_STEP = (G_MAX - G_MIN) / (len(R_SQRT) - 1)
SQRT_MEAN_EXP = 0.8862269254526032   # E sqrt(X) of a unit exponential: Gamma(3/2)
HOUR, DAY = 3600.0, 86400.0
C = math.log(30 * DAY / HOUR)   # score 0.5 = a return period of 30 days
MAX_SCORE = 0.9999              # scores stay below 1 after rounding to four places

#: sensitivity -> return period of a false alert on normal data (per series)
SENSITIVITY_PERIOD = {"high": 7 * DAY, "medium": 30 * DAY, "low": 365 * DAY}


def score_for_period(period: float) -> float:
    """The score of a value that normal data shows once per ``period`` seconds."""
    L = math.log(period / HOUR) if period > HOUR else 0.0
    return L / (L + C)


def period_for_score(score: float) -> float:
    """Inverse of :func:`score_for_period` (seconds)."""
    if score <= 0:
        return HOUR
    if score >= 1:
        return math.inf
    return HOUR * math.exp(C * score / (1.0 - score))


def sensitivity_threshold(name: str) -> float:
    """The score threshold of ``low``, ``medium`` or ``high``."""
    return score_for_period(SENSITIVITY_PERIOD[name])


def target_rate(threshold: float, interval: float) -> float:
    """The fraction of normal points at or above ``threshold`` that the threshold promises."""
    return interval / period_for_score(threshold)


def surprise(p: float, interval: float) -> float:
    """Score of a tail probability ``p`` on a series sampled every ``interval`` seconds."""
    if p <= 0:
        return MAX_SCORE
    s = score_for_period(interval / p)
    return s if s < MAX_SCORE else MAX_SCORE


class Prior:
    """Where a statistic's tail starts and how heavy it is before the series has shown its own."""

    __slots__ = ("u", "sigma", "u_min", "sigma_min")

    def __init__(self, u: float, sigma: float, u_min: float, sigma_min: float) -> None:
        self.u, self.sigma, self.u_min, self.sigma_min = u, sigma, u_min, sigma_min


# |residual| / scale, a point on its own: Gaussian noise has u = 2.3 and peaks of mean 0.4
POINT: Prior = Prior(u=2.4, sigma=0.45, u_min=2.0, sigma_min=0.38)
# |mean of the last 5 residuals| / scale: a sustained move
LEVEL: Prior = Prior(u=1.3, sigma=0.35, u_min=0.9, sigma_min=0.2)
# mean of the last 30 squared residuals / scale**2: more spread
SPREAD: Prior = Prior(u=1.9, sigma=0.35, u_min=1.4, sigma_min=0.15)

# the calibrator's state: [u, n, s1, s2, k, sigma, gamma, rate, sq]: the quantile, points seen, the
# exponentially forgotten sums of the excesses over u (and of their squares) and their weight, the fitted
# tail, how often x > u (Q0 where u is the 98th percentile, less where u rests on its floor), and the
# forgotten sum of the excesses' square roots
_U, _N, _S1, _S2, _K, _SIG, _GAM, _RATE, _SQ = range(9)
SIZE = _SQ + 1


def new(prior: Prior) -> list[float]:
    """A calibrator that knows only its prior."""
    return [prior.u, 0.0, 0.0, 0.0, 0.0, prior.sigma, 0.0, Q0, 0.0]


def upgrade(c: list[float]) -> None:
    """Bring a calibrator saved by an older version up to date in place: the square roots' sum it did not
    keep is taken as an exponential tail's of the same mean, so the shape stays the moments' until new
    peaks say otherwise."""
    if len(c) < SIZE:
        k = c[_K]
        c.append(SQRT_MEAN_EXP * math.sqrt(c[_S1] / k) * k if k > 0.0 and c[_S1] > 0.0 else 0.0)


def tail_probability(c: list[float], x: float) -> float:
    """P(statistic >= x) on this series' normal data (monotone decreasing in x)."""
    u = c[_U]
    q = c[_RATE]
    if x <= u:
        return q + (1.0 - q) * (1.0 - x / u) if u > 0 and x > 0 else 1.0
    y = (x - u) / c[_SIG]
    g = c[_GAM]
    if g > 1e-6:
        return q * float((1.0 + g * y) ** (-1.0 / g))
    if g < -1e-6:
        b = 1.0 + g * y
        if b >= END_B:
            return q * float(b ** (-1.0 / g))
        # near the end of a bounded tail: exponentially on, not zero (see END_B)
        z = (y - (END_B - 1.0) / g) / END_B
        return q * float(END_B ** (-1.0 / g)) * math.exp(-z) if z < 700 else 0.0
    return q * math.exp(-y) if y < 700 else 0.0


def value_at(c: list[float], p: float) -> float:
    """The statistic's value with tail probability ``p``: the inverse of :func:`tail_probability` in the tail."""
    r = c[_RATE] / p
    if r <= 1.0:
        return c[_U]
    g = c[_GAM]
    if g > 1e-6:
        return c[_U] + c[_SIG] / g * (float(r ** g) - 1.0)
    if g < -1e-6:
        b = float(r ** g)
        if b >= END_B:
            return c[_U] + c[_SIG] / g * (b - 1.0)
        return c[_U] + c[_SIG] * ((END_B - 1.0) / g + END_B * (math.log(r) - math.log(END_B) / g))
    return c[_U] + c[_SIG] * math.log(r)


def learn_cap(c: list[float], p: float, at_p: float) -> float:
    """The value up to which a statistic is learned (a larger value is learned as this one), given the
    alert threshold ``at_p``, the value of tail probability ``p``: the threshold itself, so anomalies do
    not teach that anomalies are normal; on a heavy tail, the value RARER times rarer. Capped at the
    threshold, the values a heavy-tailed series normally shows beyond it (bursts of tweets, of CPU) are
    all learned as the threshold, so the tail is fitted lighter than it is, the threshold comes out lower,
    more values are capped, and the series alerts on its own bursts."""
    return value_at(c, p / RARER) if c[_GAM] > HEAVY else at_p


def learn(c: list[float], x: float, prior: Prior, cap: float, weight: float = 1.0) -> None:
    """Take in one value of the statistic (winsorised at ``cap``: see :func:`learn_cap`), as ``weight`` of
    one: its pull on the quantile, on how often values exceed it and on the tail's moments."""
    if x > cap:
        x = cap
    n = c[_N] + 1.0
    c[_N] = n
    u = c[_U]
    mem = MIN_STEPS if n < MIN_STEPS else n if n < MIN_MEMORY else MIN_MEMORY
    step = weight * c[_SIG] / mem
    c[_RATE] += weight * ((1.0 if x > u else 0.0) - c[_RATE]) / (mem if n > PRIOR_PEAKS / Q0 else PRIOR_PEAKS / Q0)
    keep = 1.0 - 1.0 / MIN_MEMORY             # excesses are forgotten over MIN_MEMORY points
    c[_S1] *= keep
    c[_S2] *= keep
    c[_SQ] *= keep
    c[_K] *= keep
    if x > u:
        ex = x - u
        c[_S1] += weight * ex
        c[_S2] += weight * ex * ex
        c[_SQ] += weight * math.sqrt(ex)
        c[_K] += weight
        c[_U] = u + step * (1.0 / Q0 - 1.0)
        _fit(c, prior)
    else:
        u -= step
        c[_U] = u if u > prior.u_min else prior.u_min
        if n % 64 == 0:
            _fit(c, prior)                    # forgotten peaks give way to the prior


def shape_from_roots(r: float) -> float:
    """The generalised Pareto shape whose (E sqrt(X))^2 / E X is ``r`` (within G_MIN to G_MAX)."""
    if r >= R_SQRT[0]:
        return G_MIN
    if r <= R_SQRT[-1]:
        return G_MAX
    i = 0
    while R_SQRT[i + 1] > r:
        i += 1
    return G_MIN + R_STEP * (i + (R_SQRT[i] - r) / (R_SQRT[i] - R_SQRT[i + 1]))


def _fit(c: list[float], prior: Prior) -> None:
    """Generalised Pareto by the method of moments on the peaks, shrunk towards the prior (exponential); on a
    heavy tail, the heavier of that and the shape from the peaks' square roots (see :data:`HEAVY_FIT`)."""
    w = PRIOR_PEAKS
    s0 = prior.sigma
    k = c[_K]
    m = (c[_S1] + w * s0) / (k + w)
    m2 = (c[_S2] + w * 2.0 * s0 * s0) / (k + w)
    var = m2 - m * m
    if var <= 1e-18:
        g, sig = 0.0, m
    else:
        g = 0.5 * (1.0 - m * m / var)
        g = G_MIN if g < G_MIN else G_MAX if g > G_MAX else g
        if g > HEAVY_FIT and k >= ROOTS_MIN_PEAKS:
            ms = (c[_SQ] + w * SQRT_MEAN_EXP * math.sqrt(s0)) / (k + w)
            g2 = shape_from_roots(ms * ms / m)
            if g2 > g:
                g = g2
        sig = m * (1.0 - g)
    c[_GAM] = g
    c[_SIG] = sig if sig > prior.sigma_min else prior.sigma_min
