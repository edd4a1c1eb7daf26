"""Data-parallel training (torch.distributed, gloo on the CPU): 2 processes train the model 1 process trains.

Each rank takes its share of every global batch, so 2 ranks with the global batch B follow the
loss curve of 1 process with batch B, up to the order of float sums (the mean loss of a batch
is summed per rank, then averaged by DDP). The model has no batch statistics (no BatchNorm);
the Huber thresholds, the one statistic of a batch, are taken over the gathered global batch.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from calolab.io import write_showers

torch = pytest.importorskip("torch")

import test_ml  # noqa: E402  (pytest puts tests/ on sys.path)

detector, events, SMALL = test_ml.detector, test_ml.events, test_ml.SMALL  # test_ml's toy pions serve here too

from calolab.ml.model import RegressorConfig  # noqa: E402
from calolab.ml.train import TrainConfig, train  # noqa: E402

RTOL = 1e-4  # losses of 2 ranks vs 1 process: they differ in the order of float sums only


def _history(run: str) -> list[dict]:
    return json.loads((run / "member-0" / "metrics.json").read_text())["history"]


def test_torchrun_two_ranks_follow_the_loss_curve_of_one_process(events, tmp_path):
    """``torchrun --nproc-per-node 2 -m calolab train`` (77 training events in batches of 16: the last batch, 13
    events, splits 7 + 6) against ``python -m calolab train`` with the same global batch."""
    data = write_showers(events, tmp_path / "pions.h5")
    args = ["train", str(data), "--pool", "1,2,3", "--channels", "4,8", "--epochs", "2", "--batch-size", "16",
            "--seed", "3", "--mirror-y", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "calolab", *args, "-o", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "calolab", *args, "-o", str(tmp_path / "two")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("1 model(s) trained on 77 events") == 1  # rank 0 alone reports
    a, b = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert len(a) == len(b) == 2
    for key in ("train_loss", "val_loss", "val_mfse"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=RTOL, err_msg=key)
    wa, wb = (torch.load(run / "member-0" / "best.pt", weights_only=True)["state_dict"]
              for run in (tmp_path / "one", tmp_path / "two"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=RTOL, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "two" / "member-0").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "member-0").iterdir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Killed(Exception):
    pass


def _rank(rank: int, port: int, showers, root: str) -> None:
    """One of two ranks: a straight run, a run killed after its first epoch, and that run resumed."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model, config = RegressorConfig(pool=(1, 2, 3), **SMALL, dropout=0.2), TrainConfig(
        epochs=3, batch_size=16, seed=5, mirror_y=True)
    try:
        train(showers, f"{root}/straight", model, config, device="cpu", distributed=True)

        def kill(record):
            raise Killed

        try:
            train(showers, f"{root}/resumed", model, config, callback=kill, device="cpu", distributed=True)
        except Killed:
            pass
        train(showers, f"{root}/resumed", model, config, device="cpu", distributed=True)
    finally:
        dist.destroy_process_group()


def test_a_killed_distributed_run_resumes_to_the_weights_of_an_uninterrupted_one(events, tmp_path):
    """Rank 0 writes the checkpoint (with each rank's generator: dropout draws per rank); after a kill both
    ranks resume from it and end with the bits of a run that was never stopped."""
    torch.multiprocessing.spawn(_rank, args=(_free_port(), events, str(tmp_path)), nprocs=2)
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("straight", "resumed"))
    assert json.loads(b["state"])["epoch"] == 3 and len(b["rank_rngs"]) == 2
    for key in ("model", "loss"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert json.loads(a["state"])["history"][-1]["val_loss"] == json.loads(b["state"])["history"][-1]["val_loss"]
