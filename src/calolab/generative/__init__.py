"""Differentiable generative shower models of ``siw-ecal`` with varied absorbers (paper 004).

Two models, conditioned on the incident energy and on the 15 tungsten thicknesses (X0):

* ``wgan`` (:mod:`~calolab.generative.wgan`): the paper's conditional 2D WGAN-GP with
  energy-sum and hit-count conservation penalties;
* ``layerwise`` (:mod:`~calolab.generative.layerwise`): calolab's layer-by-layer
  autoregressive model (total energy, stick-breaking layer shares, hit counts, radial
  placement without replacement, hit energies), fitted by maximum likelihood.

Pipeline: :func:`build_dataset` (simulated layouts, :mod:`~calolab.generative.data`) ->
:func:`train` (run folder, resumable, :mod:`~calolab.generative.train`) -> :func:`load_model`
and :func:`generate` (:mod:`~calolab.generative.sample`) -> ``Showers``. The command-line
face is :mod:`~calolab.generative.commands`. Names are imported on first use, so that the
commands load without torch.

Measured with ``calolab generate benchmark`` (prototype layout; 4000 simulated, 4000
independently simulated and 4000 generated electrons at each of 1, 5, 10, 20, 50, 100 GeV;
one CPU thread each):

* layerwise (``calolab generate train --model layerwise --seed 1``: 240 layouts x 250
  electrons at 0.8-150 GeV, 80 epochs, 683 s of training on a quiet two-core machine): mean
  energy sum within 0.6% and mean hits within 0.8% at every energy; every layer's mean energy
  within 5% from 5 GeV up (at 1 GeV the last layers within their statistical error); classifier
  AUC 0.55-0.64 high-level (0.705 at 100 GeV) and 0.49-0.58 low-level (floor 0.48-0.53);
  8.8k against the simulator's 9.5k events/s over 1-100 GeV log-uniform (slower below
  ~15 GeV, up to 2.2x faster at 100 GeV).
* wgan (``--model wgan --events 50000 --energy-range 1GeV:100GeV --epochs 5 --seed 1``,
  1397 s of training on a busy machine): energy sum -29% to +30%, hits -1.6% to -11%, AUC 1.0,
  about 1.2k events/s.
"""

from importlib import import_module

_EXPORTS = {
    "DatasetConfig": "data",
    "GenerativeDataset": "data",
    "build_dataset": "data",
    "save_dataset": "data",
    "load_dataset": "data",
    "make_conditions": "data",
    "with_absorbers": "data",
    "absorber_x0": "data",
    "LayerwiseConfig": "layerwise",
    "LayerwiseModel": "layerwise",
    "WGANConfig": "wgan",
    "WGAN": "wgan",
    "TrainConfig": "train",
    "train": "train",
    "TrainedModel": "sample",
    "load_model": "sample",
    "generate": "sample",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"calolab.generative.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'calolab.generative' has no attribute {name!r}")
