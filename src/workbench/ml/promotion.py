"""When a challenger replaces the champion: a stated margin on one metric, no guard metric worse.

The retrain flow backtests champion and challenger on the same held-out window, then calls
:func:`decide` with both sets of metrics. The rule is data (:class:`PromotionRule`), so what a
plant accepts is written down beside the model, and every :class:`~workbench.ml.registry.Decision`
carries the numbers it was made on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from workbench.errors import MLError
from workbench.ml.registry import Decision


@dataclass(frozen=True)
class PromotionRule:
    """What a challenger must show to become champion.

    Parameters
    ----------
    primary : str
        The metric that decides (e.g. ``balanced_accuracy``, ``f1``, ``mase``).
    margin : float
        How much better (absolute, in the metric's units) the challenger must be on ``primary``.
    lower_is_better : frozenset of str
        Metrics where smaller is better (errors such as ``mase``, ``mae``, ``false_positive_rate``);
        every other metric is better when larger.
    guards : mapping of str to float
        Metrics the challenger may not be worse on by more than the given tolerance.
    floors : mapping of str to float
        Bounds a model must meet to be champion at all (a minimum, or a maximum for a
        lower-is-better metric): the retraining triggers of the seed (accuracy 0.65, R² 0.5,
        false-positive rate 0.2) are floors.
    """

    primary: str
    margin: float = 0.01
    lower_is_better: frozenset[str] = field(default_factory=frozenset)
    guards: Mapping[str, float] = field(default_factory=dict)
    floors: Mapping[str, float] = field(default_factory=dict)

    def better(self, metric: str, new: float, old: float, *, by: float = 0.0) -> bool:
        """Whether ``new`` beats ``old`` on ``metric`` by at least ``by``."""
        return (old - new >= by) if metric in self.lower_is_better else (new - old >= by)

    def meets_floor(self, metric: str, value: float) -> bool:
        """Whether ``value`` meets the floor of ``metric`` (True when it has none)."""
        if metric not in self.floors:
            return True
        bound = self.floors[metric]
        return value <= bound if metric in self.lower_is_better else value >= bound


def _get(metrics: Mapping[str, float], name: str, who: str) -> float:
    value = metrics.get(name)
    if value is None or not math.isfinite(float(value)):
        have = ", ".join(sorted(metrics)) or "none"
        raise MLError(f"the {who}'s metrics have no finite {name!r} (have: {have})")
    return float(value)


def decide(model: str, rule: PromotionRule, *, challenger: Mapping[str, float], challenger_version: int,
           champion: Mapping[str, float] | None = None, champion_version: int | None = None) -> Decision:
    """Promote or keep, with the reason in words and the numbers beside it.

    Both metric sets must come from the same held-out window; the function cannot check that, the
    retrain flow does.

    Returns
    -------
    Decision
        ``action`` is ``promote`` or ``keep``; ``champion_after`` is the champion once applied.
    """
    names = {rule.primary, *rule.guards, *rule.floors}
    numbers = {m: (None if champion is None else champion.get(m), challenger.get(m)) for m in sorted(names)}
    new_primary = _get(challenger, rule.primary, "challenger")
    failing = [m for m in rule.floors if not rule.meets_floor(m, _get(challenger, m, "challenger"))]

    def verdict(action: str, reason: str) -> Decision:
        after = challenger_version if action == "promote" else champion_version
        return Decision(model=model, action=action, champion_before=champion_version, champion_after=after,
                        challenger=challenger_version, reason=reason, metrics=numbers)

    if failing:
        text = ", ".join(f"{m} {challenger[m]:.3f} (needs {'≤' if m in rule.lower_is_better else '≥'} "
                         f"{rule.floors[m]:.3f})" for m in failing)
        return verdict("keep", f"challenger v{challenger_version} is not good enough to use: {text}")
    if champion is None or champion_version is None:
        return verdict("promote", f"first model: challenger v{challenger_version} meets every floor "
                                  f"({rule.primary} {new_primary:.3f})")
    old_primary = _get(champion, rule.primary, "champion")
    if not rule.better(rule.primary, new_primary, old_primary, by=rule.margin):
        return verdict("keep", f"challenger v{challenger_version} {rule.primary} {new_primary:.3f} is not "
                               f"better than champion v{champion_version} {old_primary:.3f} by the margin "
                               f"{rule.margin:g}")
    worse = []
    for metric, tolerance in rule.guards.items():
        new, old = _get(challenger, metric, "challenger"), _get(champion, metric, "champion")
        if rule.better(metric, old, new, by=tolerance + 1e-12):
            worse.append(f"{metric} {new:.3f} vs {old:.3f} (tolerance {tolerance:g})")
    if worse:
        return verdict("keep", f"challenger v{challenger_version} is better on {rule.primary} "
                               f"({new_primary:.3f} vs {old_primary:.3f}) but worse on a guard metric: "
                               + "; ".join(worse))
    return verdict("promote", f"challenger v{challenger_version} {rule.primary} {new_primary:.3f} beats "
                              f"champion v{champion_version} {old_primary:.3f} by ≥ {rule.margin:g} and is "
                              "worse on no guard metric")
