"""Devices: the device string, bf16 on the CPU, DataLoader workers and checkpoints resumed on another device."""

import json
import subprocess
import sys

import numpy as np
import pytest

from calolab import CalolabError
from calolab.io import write_showers

torch = pytest.importorskip("torch")

import test_ml  # noqa: E402  (pytest puts tests/ on sys.path)

# test_ml's fixtures serve here too: one torch thread, the toy detector and its pions
detector, events, one_thread, SMALL = test_ml.detector, test_ml.events, test_ml.one_thread, test_ml.SMALL

from calolab.ml.data import ShowerBatches, loader  # noqa: E402
from calolab.ml.device import resolve_device  # noqa: E402
from calolab.ml.ensemble import CNNEnsemble  # noqa: E402
from calolab.ml.model import RegressorConfig  # noqa: E402
from calolab.ml.predict import predict_file  # noqa: E402
from calolab.ml.train import TrainConfig, train  # noqa: E402

FAST = {"epochs": 3, "batch_size": 16, "lr_max": 3e-3}
# a device string other than "cpu" that resolves to the CPU on this machine
OTHER_CPU = "auto" if not torch.cuda.is_available() else "CPU"


def _checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_device_strings_resolve_or_fail_in_one_line(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cpu:0", "cuda:x", "gpu", ""):
        with pytest.raises(CalolabError, match="unknown device .*expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CalolabError, match="'cuda': (this torch build has no CUDA|torch sees no CUDA device)"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with two CUDA devices
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("auto") == torch.device("cuda", 0)
    with pytest.raises(CalolabError, match=r"'cuda:2': this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_bf16_on_the_cpu_is_an_error(events, tmp_path):
    with pytest.raises(CalolabError, match="bf16 autocast needs a CUDA device; this run is on cpu"):
        train(events, tmp_path / "run", RegressorConfig(**SMALL), TrainConfig(**FAST, bf16=True), device="cpu")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda:7"], "device 'cuda:7'"), (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cpu", "--bf16"], "bf16 autocast needs a CUDA device"),
])
def test_cli_device_errors_are_one_line_with_exit_status_2(events, tmp_path, args, message):
    if torch.cuda.is_available() and "cuda:7" in args and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    data = write_showers(events[:20], tmp_path / "pions.h5")
    done = subprocess.run([sys.executable, "-m", "calolab", "train", str(data), "-o", str(tmp_path / "run"),
                           "--epochs", "1", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("calolab: error: ") and message in done.stderr


def test_loader_workers_give_the_same_batches_and_bits(events, tmp_path):
    batches = ShowerBatches(events, 16, (1, 2, 2), shuffle=True, seed=3, shuffle_buffer=40, chunk_events=30,
                            hit_inputs=True)
    batches.set_epoch(5)
    alone = list(batches)
    for workers in (1, 2):
        through = list(loader(batches, workers))
        assert [b.index.tolist() for b in through] == [b.index.tolist() for b in alone]
        for a, b in zip(alone, through, strict=True):
            assert torch.equal(a.x, b.x) and torch.equal(a.hits.inputs, b.hits.inputs)
    config = TrainConfig(**{**FAST, "epochs": 2}, seed=4, mirror_y=True)
    model = RegressorConfig(pool=(1, 2, 3), **SMALL, dropout=0.2)
    straight = train(events, tmp_path / "straight", model, config)
    workers = train(events, tmp_path / "workers", model, config, loader_workers=2)
    a, b = straight.model.state_dict(), workers.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_resumes_on_another_device_string_with_the_same_bits(events, tmp_path):
    """Checkpoints hold CPU tensors: a run trained one epoch with device "cpu" and resumed with another device
    string (one that resolves to the CPU here) ends with the weights of a run never interrupted."""
    config = TrainConfig(**FAST, seed=7)
    model = RegressorConfig(**SMALL, dropout=0.2)
    straight = train(events, tmp_path / "straight", model, config, device=OTHER_CPU)

    def kill(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(events, tmp_path / "resumed", model, config, callback=kill, device="cpu")
    saved = _checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert json.loads(saved["state"])["epoch"] == 1
    assert all(t.device.type == "cpu" for t in saved["model"].values())
    resumed = train(events, tmp_path / "resumed", model, config, device=OTHER_CPU)
    a, b = _checkpoint(tmp_path / "straight" / "checkpoint.pt"), _checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["val_loss"] for r in straight.history] == [r["val_loss"] for r in resumed.history]
    # the ensemble and predict_file take the device too, with the same predictions
    on_cpu = CNNEnsemble.load(tmp_path / "resumed", device="cpu")
    assert on_cpu.device == torch.device("cpu")
    data = write_showers(events, tmp_path / "pions.h5")
    predict_file(tmp_path / "resumed", data, tmp_path / "pred.h5", device=OTHER_CPU)
    import h5py

    with h5py.File(tmp_path / "pred.h5") as f:
        np.testing.assert_array_equal(f["predicted_energy"][:], on_cpu.predict(events))
