"""Differentiable generative shower models of ``siw-ecal`` with varied absorbers (paper 004).

Two models, conditioned on the incident energy and on the 15 tungsten thicknesses (X0):

* ``wgan`` (:mod:`~calolab.generative.wgan`): the paper's conditional 2D WGAN-GP with
  energy-sum and hit-count conservation penalties;
* ``layerwise`` (:mod:`~calolab.generative.layerwise`): calolab's layer-by-layer
  autoregressive model (total energy, the shower's centre of gravity, stick-breaking layer
  shares, hit counts, radial placement without replacement, hit energies), fitted by maximum
  likelihood.

Pipeline: :func:`build_dataset` (simulated layouts, :mod:`~calolab.generative.data`) ->
:func:`train` (run folder, resumable, :mod:`~calolab.generative.train`) -> :func:`load_model`
and :func:`generate` (:mod:`~calolab.generative.sample`) -> ``Showers``. The command-line
face is :mod:`~calolab.generative.commands`. Names are imported on first use, so that the
commands load without torch.

``calolab generate benchmark RUN -o OUT`` compares a trained model with the simulator
(energy sums, layer profiles, hit counts, classifier AUC beside the simulator-vs-simulator
floor, generation speed) and writes a run folder; ``calolab report OUT`` renders it.

Generated showers are :class:`~calolab.showers.Showers` of ``siw-ecal`` (hits in MeV, cells
(layer, x, y)); conditions are the incident energy in MeV and the 15 tungsten thicknesses.
Example, the configurable parts (training itself: ``calolab generate train``):

>>> import calolab.generative as gen
>>> sorted(name for name in gen.__all__ if name.endswith("Config"))
['DatasetConfig', 'LayerwiseConfig', 'TrainConfig', 'WGANConfig']
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
