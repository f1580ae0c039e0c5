"""The trainer's held-out side: which held-out samples each check uses, the logits on them, the
score, and the account of the data a run prints.

Per epoch, a split larger than ``config.epoch_eval_size`` is checked on a stratified subset of it
(the same number of samples of each class, seeded); the final accuracy is on the whole split.
Non-finite outputs stop the run with an error that says whether the weights or the data are at fault.

:class:`HeldOutEvaluation` is mixed into :class:`~minitl.train.trainer.Trainer`; it reads the
trainer's ``config``, ``splits``, ``model``, ``show_progress``, ``_eval_subsets`` and calls its
``features()``, ``_image_loader()`` and ``_tensor()``.
"""
from __future__ import annotations

import warnings

import numpy

from ..data.datasets import stratified_indices, stratified_subset
from ..data.loader import DataLoader
from .features import FeatureDataset
from .loop import NonFiniteData, TrainingDiverged, predict, score
from .plan import Phase


class HeldOutEvaluation:
    """Evaluation on the held-out (test) split, for :class:`~minitl.train.trainer.Trainer`."""

    def _eval_source(self, phase: Phase | None, full: bool):
        """(FeatureDataset or image dataset, start segment) for evaluating on the held-out split: the
        whole split, or (per epoch, when it is larger than ``epoch_eval_size``) a stratified subset."""
        if phase is not None and phase.cached:
            source, start = self.features("test", phase.cut), phase.cut
            cheap = phase.cut == len(self.model.segments)  # pooled features: the head alone, the whole split
        else:
            source, start, cheap = self.splits.test, 0, False
        if full or cheap or len(source) <= self.config.epoch_eval_size:
            return source, start
        key = (phase is not None and phase.cached, start)
        if key not in self._eval_subsets:
            self._eval_subsets[key] = self._stratified(source)
        return self._eval_subsets[key], start

    def _stratified(self, source):
        """``epoch_eval_size`` held-out samples, the same number of each class; the whole ``source``
        (with a warning saying so) when a class has too few."""
        per_class = max(1, self.config.epoch_eval_size // max(1, len(self.splits.classes)))
        seed = self.config.seed + 7
        try:
            if isinstance(source, FeatureDataset):
                rows = stratified_indices(source.labels, per_class=per_class, seed=seed)
                return FeatureDataset(source.features[rows], source.labels[rows], source.classes)
            return stratified_subset(source, per_class, seed=seed)
        except ValueError as error:
            warnings.warn(
                f"per-epoch held-out check: cannot take {per_class} images of every class ({error}); "
                f"checking on the whole held-out split ({len(source)} images) every epoch instead",
                RuntimeWarning, stacklevel=3)
            return source

    def _epoch_eval_count(self, phase: Phase) -> int:
        """How many held-out images the per-epoch check of ``phase`` uses (see :meth:`_eval_source`)."""
        total, k = len(self.splits.test), max(1, len(self.splits.classes))
        if (phase.cached and phase.cut == len(self.model.segments)) or total <= self.config.epoch_eval_size:
            return total
        return min(total, max(1, self.config.epoch_eval_size // k) * k)

    def describe_data(self, phases) -> str:
        """One account of the numbers: training images and the views made of them, the held-out (test)
        split, and which images each accuracy is on."""
        train, test = len(self.splits.train), len(self.splits.test)
        if self.config.flip and any(p.cached for p in phases):
            views = f"{train} training images, {2 * train} views with their mirror images (--no-flip: without)"
        elif self.config.flip or self.config.augment:
            views = f"{train} training images, flipped{' and augmented' if self.config.augment else ''} at random " \
                    "every epoch"
        else:
            views = f"{train} training images"
        counts = {p.name: self._epoch_eval_count(p) for p in phases}
        if len(set(counts.values())) == 1:
            checks = f"{'all ' if test in counts.values() else ''}{next(iter(counts.values()))}"
        else:
            checks = ", ".join(f"{'all ' if n == test else ''}{n} in phase '{name}'" for name, n in counts.items())
        return (f"images: {views}; test: {test} images ({self.splits.heldout}), {len(self.splits.classes)} classes; "
                f"no separate validation split: each epoch is checked on {checks} of the test images "
                f"(a stratified subset keeps large phases fast), the final accuracy on all {test}")

    def predict_logits(self, source, start: int, desc: str = "evaluate"):
        """Logits (N, C) and labels for a FeatureDataset at ``start`` or an image dataset (start 0)."""
        if isinstance(source, FeatureDataset):
            loader = DataLoader(source, batch_size=max(self.config.eval_batch_size, 256))
        else:
            loader = self._image_loader(source, train=False, seed=0, batch_size=self.config.eval_batch_size)
        return predict(self.model, loader, start, self._tensor, desc, show_progress=self.show_progress)

    def _evaluate(self, phase, full: bool, desc: str):
        """(cross-entropy, accuracy, logits, labels) on the held-out split."""
        logits, labels = self.predict_logits(*self._eval_source(phase, full), desc)
        if not numpy.isfinite(logits).all():
            broken = self._nonfinite_weights()
            if broken:
                raise TrainingDiverged(f"the weights hold NaN or Inf ({', '.join(broken[:3])}): evaluating the "
                                       "held-out split gave non-finite outputs. Try a lower learning rate.")
            raise NonFiniteData(
                f"the held-out split gives NaN or Inf outputs although the weights are finite: its inputs hold "
                f"NaN or Inf values ({int((~numpy.isfinite(logits)).any(axis=1).sum())} of {len(logits)} samples); "
                "fix or drop those samples")
        loss, acc = score(logits, labels)
        return loss, acc, logits, labels

    def _nonfinite_weights(self, state=None) -> list:
        """Names of the model's floating-point arrays holding NaN or Inf."""
        state = self.model.state_dict() if state is None else state
        bad = []
        for name, value in state.items():
            array = numpy.asarray(value.numpy() if hasattr(value, "numpy") else value)
            if array.dtype.kind == "f" and not numpy.isfinite(array).all():
                bad.append(name)
        return bad
