"""The spread between runs that differ only in their seed, and the one rule by which the comparisons
(code/compare_beta.py, compare_likelihoods.py, compare_priors.py) call one setting better than another.

A seed changes the initial weights, the order of the training images and every sample drawn, so two runs
of one setting end with different numbers. A difference between two settings is stated only when it is
beyond that spread: when the intervals mean ± sd of the two settings do not overlap, sd the sample
standard deviation over the seeds (n − 1 in its denominator). With one seed there is no spread to measure,
and no difference is beyond it.
"""

import math

import numpy as np

RULE = ("a setting ranks above another on a metric only where the intervals mean ± sd over their seeds do not "
        "overlap (sd: the sample standard deviation over the seeds, n − 1 in its denominator); with fewer than "
        "two seeds there is no sd, and no ranking")


def over_seeds(runs, metrics):
    """The spread of `metrics` (names) over `runs`, {seed: {metric: number}}: {"seeds": [seed, ...],
    "values": {metric: [one per seed, in seed order]}, "mean", "sd", "min", "max": {metric: number}}, sd the
    sample standard deviation (None for one seed). A metric missing or None in any run is left out."""
    seeds = sorted(runs)
    summary = {"seeds": seeds, "values": {}, "mean": {}, "sd": {}, "min": {}, "max": {}}
    for metric in metrics:
        values = [runs[seed].get(metric) for seed in seeds]
        if any(value is None for value in values):
            continue
        values = [float(value) for value in values]
        summary["values"][metric] = values
        summary["mean"][metric] = float(np.mean(values))
        summary["sd"][metric] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        summary["min"][metric] = min(values)
        summary["max"][metric] = max(values)
    return summary


def beyond_spread(a, b, metric):
    """Whether settings `a` and `b` (over_seeds summaries) differ on `metric` beyond their spread: their
    intervals mean ± sd do not overlap (RULE). False where either has no sd (one seed)."""
    sd_a, sd_b = a["sd"].get(metric), b["sd"].get(metric)
    if sd_a is None or sd_b is None:
        return False
    return abs(a["mean"][metric] - b["mean"][metric]) > sd_a + sd_b


def ranking(settings, metric, higher_is_better):
    """The settings ({name: over_seeds summary}) ranked on `metric`, best mean first, and which of the
    differences are beyond the spread (beyond_spread):

        {"metric", "better": "higher" | "lower", "rule": RULE,
         "order": [names, best mean first],
         "pairs": [{"better": name, "worse": name, "difference": |Δ mean|, "beyond_spread": bool}, ...],
         "best": the name whose mean is best and beyond the spread of every other's, else None,
         "separable_order": True if each setting in "order" is beyond the spread of the next}

    Settings without the metric are left out."""
    names = [name for name in settings if metric in settings[name]["mean"]]
    sign = 1 if higher_is_better else -1
    order = sorted(names, key=lambda name: -sign * settings[name]["mean"][metric])
    pairs = [{"better": better, "worse": worse,
              "difference": abs(settings[better]["mean"][metric] - settings[worse]["mean"][metric]),
              "beyond_spread": beyond_spread(settings[better], settings[worse], metric)}
             for i, better in enumerate(order) for worse in order[i + 1:]]
    best = order[0] if order and all(pair["beyond_spread"] for pair in pairs if pair["better"] == order[0]) else None
    if len(order) < 2:
        best = None
    return {"metric": metric, "better": "higher" if higher_is_better else "lower", "rule": RULE, "order": order,
            "pairs": pairs, "best": best,
            "separable_order": len(order) > 1 and all(
                beyond_spread(settings[a], settings[b], metric) for a, b in zip(order, order[1:]))}


def mean_sd(summary, metric, digits=2):
    """"140.98 ± 0.21" (mean ± sd) or "140.98" (one seed), for printed lines and figure labels."""
    mean, sd = summary["mean"][metric], summary["sd"][metric]
    return f"{mean:.{digits}f}" + ("" if sd is None or math.isnan(sd) else f" ± {sd:.{digits}f}")
