"""``CheckpointRanking``: which checkpoints a run keeps, for loops whose framework keeps no top-k itself.

Lightning's ``ModelCheckpoint`` and the ``Trainer``'s ``save_total_limit`` decide themselves, and an
integration only mirrors what they dropped (:meth:`TrainingRecorder.drop`). A loop with no such policy
(Keras's ``fit``, a custom loop) asks a ``CheckpointRanking`` instead, so the rule is the same everywhere:
rank by one metric, NaN and infinity never best and only filling free places, ties to the oldest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidArgumentError

#: Metric names containing one of these are better when higher (``mode="auto"``); others when lower.
HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "r2")


def resolve_mode(monitor: str | None, mode: str) -> str:
    """Return ``"min"`` or ``"max"`` for a metric (``"auto"``: higher is better for accuracy-like names)."""
    if mode not in ("auto", "min", "max"):
        raise InvalidArgumentError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = (monitor or "").lower().removeprefix("val_")
    return "max" if any(key in name for key in HIGHER_IS_BETTER) else "min"


@dataclass
class _Kept:
    version: int
    score: float | None
    order: int


class CheckpointRanking:
    """Decide which checkpoints to record and which recorded ones to drop.

    Args:
        monitor: The metric that ranks checkpoints (``None``: keep the newest).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (see :func:`resolve_mode`).
        keep_top_k: Keep only the k best (the k newest without ``monitor``); ``None`` keeps all.
        save_best_only: Record only checkpoints that improve on the best so far.

    Raises:
        InvalidArgumentError: An invalid argument or combination.
    """

    def __init__(self, monitor: str | None, mode: str = "auto", keep_top_k: int | None = None,
                 save_best_only: bool = False) -> None:
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise InvalidArgumentError(f"monitor must be a metric name or None, got {monitor!r}")
        if keep_top_k is not None and (isinstance(keep_top_k, bool) or not isinstance(keep_top_k, int)
                                       or keep_top_k < 1):
            raise InvalidArgumentError(f"keep_top_k must be a positive integer or None, got {keep_top_k!r}")
        if save_best_only and monitor is None:
            raise InvalidArgumentError("save_best_only=True needs a monitor to compare checkpoints by")
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.keep_top_k = keep_top_k
        self.save_best_only = bool(save_best_only)
        self.reset()

    @property
    def ranked(self) -> bool:
        """Whether checkpoints are chosen by the metric (else every one is recorded)."""
        return self.save_best_only or (self.keep_top_k is not None and self.monitor is not None)

    def reset(self) -> None:
        """Forget the checkpoints of a previous run."""
        self._kept: list[_Kept] = []
        self._order = 0
        self.best: float | None = None
        self._warned = False

    def _better(self, score: float, than: float) -> bool:
        return score > than if self.mode == "max" else score < than

    def consider(self, metrics: Mapping[str, Any]) -> tuple[bool, bool, float | None]:
        """Decide about a checkpoint from its metrics.

        Returns:
            ``(record, is_best, score)``: whether to record it, whether it is the best so far, and its finite
            score (``None`` when unscored, NaN or infinite).
        """
        present = self.monitor is not None and self.monitor in metrics
        score = None
        if present:
            try:
                score = float(metrics[self.monitor])  # type: ignore[index]
            except (TypeError, ValueError):
                score = None
            score = score if score is not None and math.isfinite(score) else None
        is_best = score is not None and (self.best is None or self._better(score, self.best))
        if not self.ranked:
            return True, is_best, score
        if not present:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"ModelyardCallback cannot rank checkpoints by {self.monitor!r}: it is not in the logs "
                    f"(available: {sorted(metrics)}); checkpoints are skipped until it is. Pass validation "
                    "data for val_ metrics, or monitor one of the available ones.", stacklevel=4)
            return False, False, None
        if self.save_best_only and not is_best:
            return False, False, score
        if self.keep_top_k is not None and len(self._kept) >= self.keep_top_k:
            # A NaN or infinite score (None here) ranks below every number: it only fills free places.
            worst = self._worst()
            if score is None or worst.score is not None and not self._better(score, worst.score):
                return False, False, score
        return True, is_best, score

    def add(self, version: int, score: float | None) -> list[int]:
        """Note a recorded version; return the versions it displaced from the top k (to drop)."""
        if score is not None and (self.best is None or self._better(score, self.best)):
            self.best = score
        self._kept.append(_Kept(version, score, self._order))
        self._order += 1
        displaced: list[int] = []
        while self.keep_top_k is not None and len(self._kept) > self.keep_top_k:
            victim = self._worst()
            self._kept.remove(victim)
            displaced.append(victim.version)
        return displaced

    def _worst(self) -> _Kept:
        if self.monitor is None:
            return min(self._kept, key=lambda k: k.order)  # recency: the oldest goes

        def rank(k: _Kept) -> tuple[int, float, int]:
            # Unscored versions rank below every scored one; ties go to the oldest.
            if k.score is None:
                return (0, 0.0, k.order)
            return (1, k.score if self.mode == "max" else -k.score, k.order)

        return min(self._kept, key=rank)
