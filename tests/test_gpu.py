"""What only a CUDA machine can check: the GPU path of training and of the pool (skipped,
saying so, without CUDA; run with ``python -m pytest -m gpu`` on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from nas.evaluate import Candidate, make_evaluator
from nas.spec import ArchSpec
from nas.train import train_spec

pytestmark = pytest.mark.gpu

DATA = {"name": "synthetic", "n_train": 512, "n_test": 128}
NET = ArchSpec.from_string("3x32x32 cba_c16 basic_c16 basic_c32_s2 head_c10")


def test_training_on_the_gpu_uses_bf16_and_device_resident_data():
    out = train_spec(NET, data={**DATA, "resident": "auto"},
                     train={"epochs": 2, "batch_size": 64, "accelerator": "gpu"}, seed=0)
    assert out["status"] == "ok" and out["accuracy"] > 0.2  # learns (10 classes: 0.1)
    assert torch.cuda.max_memory_allocated() > 0


def test_the_pool_pins_one_worker_per_gpu():
    n_gpus = torch.cuda.device_count()
    with make_evaluator({"backend": "pool"}, data=DATA,
                        train={"epochs": 1, "batch_size": 64, "accelerator": "gpu"}) as ev:
        assert ev.slots == n_gpus and ev.n_gpus == n_gpus
        results = ev.evaluate([Candidate(f"net{i}", NET, seed=i) for i in range(n_gpus + 1)])
    assert all(r.ok for r in results), [r.reason for r in results]
