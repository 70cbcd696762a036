"""Losses of the two training stages, all masked by true lengths.

Stage I: `masked_mse(Projector(F_TTS), F_teacher)`. Stage II: a coefficient loss plus the
mouth-state-aware vertex loss of UniTAF (arXiv 2602.15651): plain squared vertex error
everywhere, plus `w(n) · ||M − M̂||²` on the mouth vertices, with `w = α |n − 0.5|^γ` and `n`
the ground-truth mouth openness normalised to [0, 1] over an interval fitted on the training
set. Plain MSE pulls the mouth toward an average half-open shape; the weight grows toward
fully closed and fully open frames. Optionally (stages II and III) VOCA's velocity loss on the
coefficients' frame-to-frame changes. Optionally (stage II) a bilabial-closure term: per
/p b m/ phone, how much more open the predicted mouth's most closed frame is than ground
truth's, which is what the bilabial closure score (BCS) reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitaf_model.model.rig import Rig, mouth_openness


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
               ) -> torch.Tensor:
    """Mean squared error over the valid frames: (B, T, ...) tensors, (B, T) bool mask."""
    mask = mask.to(prediction.dtype)
    while mask.dim() < prediction.dim():
        mask = mask.unsqueeze(-1)
    squared = (prediction - target).square() * mask
    per_frame = prediction[0, 0].numel()
    return squared.sum() / (mask.sum() * per_frame).clamp_min(1.0)


def velocity_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                  ) -> torch.Tensor:
    """VOCA's velocity term (Cudeiro et al., CVPR 2019): the MSE between frame-to-frame
    differences of prediction and target, over pairs of valid frames."""
    both = mask[:, 1:] & mask[:, :-1]
    return masked_mse(prediction.diff(dim=1), target.diff(dim=1), both)


def openness_weight(normalised: torch.Tensor | np.ndarray, alpha: float = 3.0,
                    gamma: float = 2.0) -> torch.Tensor | np.ndarray:
    """The mouth weight `α |n − 0.5|^γ` of normalised openness n (a tensor or an array)."""
    return alpha * abs(normalised - 0.5) ** gamma


@dataclass(frozen=True)
class OpennessInterval:
    low: float
    high: float

    def normalise(self, openness: torch.Tensor | np.ndarray):
        scaled = (openness - self.low) / max(self.high - self.low, 1e-9)
        return scaled.clamp(0, 1) if isinstance(scaled, torch.Tensor) else np.clip(scaled, 0, 1)


def side_contributions(openness: np.ndarray, interval: OpennessInterval, alpha: float = 3.0,
                       gamma: float = 2.0) -> tuple[float, float]:
    """Total mouth weight of the frames on the closed side (n < 0.5) and the open side."""
    n = interval.normalise(openness)
    weight = openness_weight(n, alpha, gamma)
    return float(weight[n < 0.5].sum()), float(weight[n > 0.5].sum())


def fit_openness_interval(openness: np.ndarray, coverage: float = 0.95, alpha: float = 3.0,
                          gamma: float = 2.0, steps: int = 201) -> OpennessInterval:
    """The interval [low, high] that holds `coverage` of the training frames' openness and
    whose closed-side and open-side weight totals are the most nearly equal.

    Candidates slide a window holding `coverage` of the frames from the lowest to the
    highest values; where most frames pile up at one end (mouths are closed much of the
    time), the window's free end may reach past the data so that the pile is not all at
    n = 0 or n = 1.
    """
    values = np.sort(np.asarray(openness, dtype=np.float64).ravel())
    span = values[-1] - values[0]
    if span <= 0:
        raise ValueError("mouth openness does not vary over the training frames")

    def fraction_below(x: float) -> float:
        return np.searchsorted(values, x) / len(values)

    candidates = []
    for low in np.linspace(values[0] - span, np.quantile(values, 1 - coverage), steps):
        candidates.append((low, np.quantile(values, min(fraction_below(low) + coverage, 1))))
    for high in np.linspace(np.quantile(values, coverage), values[-1] + span, steps):
        candidates.append((np.quantile(values, max(fraction_below(high) - coverage, 0)), high))
    best, best_gap = None, np.inf
    for low, high in candidates:
        if high <= low:
            continue
        interval = OpennessInterval(float(low), float(high))
        closed, opened = side_contributions(values, interval, alpha, gamma)
        gap = abs(closed - opened) / max(closed + opened, 1e-12)
        if gap < best_gap:
            best, best_gap = interval, gap
    return best


@dataclass(frozen=True)
class RigTerms:
    """What the vertex loss needs of a rig, for weights in the rig's channel order: vertices
    are `meanshape + w @ basis`, so the squared error of all vertices is a quadratic form of
    the weight error (`gram`), and only the mouth vertices are ever built."""

    gram: torch.Tensor  # (C, C): Σ over vertices and axes of basis_c · basis_d / (3V)
    mouth_mean: torch.Tensor  # (M, 3)
    mouth_basis: torch.Tensor  # (C, M, 3)


def rig_terms(rig: Rig, device: torch.device | str = "cpu") -> RigTerms:
    basis = torch.as_tensor(rig.blendshape, dtype=torch.float64)
    flat = basis.reshape(len(basis), -1)
    index = torch.as_tensor(rig.mouth_idx)
    return RigTerms(gram=(flat @ flat.T / flat.shape[1]).float().to(device),
                    mouth_mean=torch.as_tensor(rig.meanshape)[index].float().to(device),
                    mouth_basis=basis[:, index].float().to(device))


def mouth_vertices(weights: torch.Tensor, terms: RigTerms) -> torch.Tensor:
    """(B, T, M, 3) mouth vertices of (B, T, C) rig weights."""
    return terms.mouth_mean + torch.einsum("btc,cmk->btmk", weights, terms.mouth_basis)


def vertex_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                terms: RigTerms, interval: OpennessInterval | None, alpha: float = 3.0,
                gamma: float = 2.0, scale: float = 1.0) -> torch.Tensor:
    """For (B, T, C) rig weights: the squared vertex error over all vertices, plus the
    openness-weighted mouth term (skipped when `interval` is None: plain vertex MSE), with
    vertices multiplied by `scale` (the openness is read at the rig's own scale, where the
    interval was fitted)."""
    error = predicted - target
    valid = mask.to(predicted.dtype)
    frames = valid.sum().clamp_min(1.0)
    per_frame = torch.einsum("btc,cd,btd->bt", error, terms.gram, error)
    loss = (per_frame * valid).sum() / frames * scale**2
    if interval is None:
        return loss
    weight = openness_weight(interval.normalise(mouth_openness(mouth_vertices(target, terms))),
                             alpha, gamma)
    mouth_error = torch.einsum("btc,cmk->btmk", error, terms.mouth_basis).square().mean((-1, -2))
    return loss + (weight * mouth_error * valid).sum() / frames * scale**2


def closure_loss(predicted: torch.Tensor, target: torch.Tensor, bilabial: torch.Tensor,
                 terms: RigTerms, scale: float = 1.0) -> torch.Tensor:
    """For (B, T, C) rig weights and (B, K, T) bilabial phone masks: the mean over the
    phones of `relu(min open(predicted) − min open(target))²`, the minima over each phone's
    frames of the rig's mouth openness (× `scale`). One-sided: closing deeper than ground
    truth, or elsewhere, costs nothing here. 0 where the batch has no bilabial phone."""
    held = bilabial.any(-1)
    if not held.any():
        return predicted.sum() * 0.0

    def interval_minima(weights: torch.Tensor) -> torch.Tensor:
        openness = mouth_openness(mouth_vertices(weights, terms)).unsqueeze(1)
        openness = openness.expand_as(bilabial)
        return openness.masked_fill(~bilabial, torch.inf).amin(-1)[held]

    excess = (interval_minima(predicted) - interval_minima(target).detach()).clamp_min(0)
    return (excess * scale).square().mean()
