"""Mirror images of the CNN's batches in y or x: a symmetry of the detector used as augmentation.

Mirroring in y (``y -> -y``) reverses the input grid along Y and negates the y-odd
features (:data:`MIRROR_ODD`, e.g. ``y_mean_mm``). This is a symmetry of every calolab
detector (cells centred on the beam axis, the field along y: a reflection through the x-z
plane leaves a field along y unchanged), so training on a random half of every batch
mirrored (``TrainConfig.mirror_y``) counts each event twice without simulating it twice,
and :class:`~calolab.ml.ensemble.CNNEnsemble` averages a model's predictions over an event
and its mirror image. Mirroring in x (``x -> -x``) is a symmetry only without a field (it
reverses the bend of charged tracks in a field along y), so :func:`check_mirror_grid`
refuses it for a detector with ``field_tesla != 0``. Features not in :data:`MIRROR_ODD`
are taken to be even; a feature transform must be odd (``signed-log`` is).

A cylindrical detector's grid axes hold (alpha, r) bins: reversing Y would reverse r, which
is no reflection at all, and x -> -x maps alpha to pi - alpha (a reversal and a rotation of
the alpha bins). The reflection y -> -y reverses the alpha axis (X), bin k -> n_alpha - 1 - k
(the bins are symmetric about alpha = 0), with the y-odd signs: the batch mirroring here
reverses Y with those signs, so :func:`check_mirror_grid` refuses both axes there.

Shapes: grid ``(B, C, Z, X, Y)`` (pooled layer, x, y), features ``(B, F)``, signs ``(F,)``.

>>> import numpy as np, torch
>>> from calolab.ml.data import Batch
>>> x = torch.arange(4.0).view(1, 1, 1, 1, 4)  # one event, four cells along y
>>> b = Batch(x, torch.ones(1), torch.tensor([[2.0, 3.0]]), torch.ones(1), np.array([0]))
>>> signs = mirror_signs(["y_mean_mm", "z_mean_mm"], "y")
>>> m = mirror_batch(b, signs, np.array([True]), "y")
>>> m.x.flatten().tolist(), m.features.tolist()
([3.0, 2.0, 1.0, 0.0], [[-2.0, 3.0]])
>>> mirror_axes(mirror_y=True, mirror_x=True)
('y', 'x')
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from calolab.errors import CalolabError
from calolab.ml.data import Batch

# high-level and muon features that change sign under x -> -x and under y -> -y; every other
# calolab feature is even under both
MIRROR_ODD = {"x": frozenset({"x_mean_mm", "imbalance_x_mm", "bend_x_mm"}),
              "y": frozenset({"y_mean_mm", "imbalance_y_mm"})}


def mirror_axes(mirror_y: bool, mirror_x: bool = False) -> tuple[str, ...]:
    """The axes to mirror, y before x (the order of the training draws)."""
    return tuple(axis for axis, on in (("y", mirror_y), ("x", mirror_x)) if on)


def check_mirror_grid(detector, pool: tuple[int, int, int], axis: str = "y") -> None:
    """Mirroring the pooled grid is mirroring the detector only if the pooled cells divide its cells along
    ``axis``; in x, only without a field; never on cylindrical (alpha, r) bins. Raises
    :class:`~calolab.errors.CalolabError` otherwise.

    >>> from calolab.geometry import load_detector
    >>> check_mirror_grid(load_detector("calochallenge-ds2"), (1, 1, 1), "y")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calolab.errors.CalolabError: mirror_y on calochallenge-ds2: its grid's y axis holds r bins ...
    """
    if detector.cylinder is not None:
        what = ("its grid's y axis holds r bins (cylindrical alpha x r cells), and reversing them is no reflection; "
                "y -> -y reverses the alpha bins" if axis == "y" else
                "x -> -x maps its alpha bins to pi - alpha (cylindrical alpha x r cells), a reversal and a rotation")
        raise CalolabError(f"mirror_{axis} on {detector.name}: {what}, which batch mirroring does not do")
    cells, k = (detector.ny, pool[2]) if axis == "y" else (detector.nx, pool[1])
    if cells % k:
        raise CalolabError(f"mirror_{axis} needs whole pooled cells in {axis}: {detector.name} has {cells} cells, "
                           f"pooled by {k}")
    if axis == "x" and detector.field_tesla:
        raise CalolabError(f"mirror_x needs a detector without a field: {detector.name} has {detector.field_tesla:g} T "
                           "along y, and x -> -x reverses the bend of charged tracks")


def mirror_signs(feature_names: list[str], axis: str = "y") -> torch.Tensor:
    """Sign of each feature under ``y -> -y`` (or ``x -> -x``) (F,): -1 for :data:`MIRROR_ODD`, else +1."""
    odd = MIRROR_ODD[axis]
    return torch.tensor([-1.0 if name in odd else 1.0 for name in feature_names])


def mirror_batch(batch: Batch, signs: torch.Tensor, flip: np.ndarray, axis: str = "y") -> Batch:
    """``batch`` with the events where ``flip`` (B,) is true mirrored in ``axis`` (y or x), as new tensors.

    The grid (B, C, Z, X, Y) is reversed along Y (or X), the features (B, F) are multiplied
    by ``signs`` (F,), and the hits of learned hit classes move to the mirrored voxel (their
    inputs, sums over square neighbourhoods, stay as they are).
    """
    mask = torch.from_numpy(np.asarray(flip, bool)).to(batch.x.device)
    x = torch.where(mask.view(-1, *([1] * (batch.x.dim() - 1))), batch.x.flip(-1 if axis == "y" else -2), batch.x)
    features = batch.features
    if features is not None:
        features = torch.where(mask[:, None], features * signs.to(features.dtype), features)
    hits = batch.hits
    if hits is not None:
        per_event = batch.x[0, 0].numel()
        qx, qy = batch.x.shape[-2:]
        size, stride = (qy, 1) if axis == "y" else (qx, qy)
        i = hits.occupied // stride % size  # the hit's voxel index along the axis
        moved = mask[hits.occupied // per_event]
        hits = replace(hits, occupied=torch.where(moved, hits.occupied + (size - 1 - 2 * i) * stride, hits.occupied))
    return replace(batch, x=x, features=features, hits=hits)
