"""Training on 2 processes (DDP, gloo on CPU): data shards, equivalence with one process on the
global batch, and `torchrun ... -m ganrun train` end to end (then resumed with trainer.devices).

Process start-up (importing torch in each rank) costs seconds, so there are only two tests
that spawn processes; each checks several things.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from ganrun.build import build_data, build_discriminator, build_generator, build_loss, build_state
from ganrun.data.base import check_batch_size
from ganrun.errors import GanrunError
from ganrun.training.distributed import (
    Ranks,
    any_rank,
    check,
    launch_devices,
    rank_batches,
    wrap_models,
)
from ganrun.training.methods.gan import MicroBatch, d_step, g_step
from ganrun.training.players import unwrap
from ganrun.training.train import train

# ------------------------------------------------------------------ data shards (no processes)


@pytest.mark.parametrize("dataset", ["digits", "ring8"])
@pytest.mark.parametrize("world", [2, 3])
def test_rank_shards_partition_the_one_process_global_batch(make_cfg, dataset, world):
    """Batches 5..7 (a resumed run's start): the ranks' batches of B, stacked in rank order,
    are exactly one process's batches of world * B, labels included."""
    data = build_data(make_cfg(f"dataset={dataset}", "model=mlp"))
    B, start, cpu = 4, 5, torch.device("cpu")
    ranks = [rank_batches(data, B, 0, start, cpu, Ranks(r, world)) for r in range(world)]
    whole = rank_batches(data, B * world, 0, start, cpu, Ranks())
    for _ in range(3):
        parts = [next(it) for it in ranks]
        x, y = next(whole)
        assert all(p[0].shape[0] == B for p in parts)
        torch.testing.assert_close(torch.cat([p[0] for p in parts]), x, rtol=0, atol=0)
        if y is None:
            assert all(p[1] is None for p in parts)
        else:
            torch.testing.assert_close(torch.cat([p[1] for p in parts]), y, rtol=0, atol=0)


def test_dataset_size_check_counts_the_global_batch():
    """1,000 samples: 500 per process fits 2 processes, 501 does not (the message says why)."""
    check_batch_size(1000, 500, world=2)
    with pytest.raises(GanrunError, match=r"batch_size=501 x 2 processes = 1002 .* at most 500"):
        check_batch_size(1000, 501, world=2)


def test_launch_devices_and_sync_batchnorm_checks(make_cfg, monkeypatch):
    """trainer.devices=N relaunches only outside torchrun; a mismatch with torchrun's process
    count, a sweep, or SyncBatchNorm on CPU each fail with a message naming the key."""
    assert launch_devices(make_cfg(), []) == 0
    assert launch_devices(make_cfg("trainer.devices=3"), []) == 3
    with pytest.raises(GanrunError, match="trainer.devices=0 must be at least 1"):
        launch_devices(make_cfg("trainer.devices=0"), [])
    with pytest.raises(GanrunError, match=r"trainer.devices with a sweep \(-m\)"):
        launch_devices(None, ["-m", "trainer.devices=2", "loss=ns,hinge"])
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun --nproc_per_node=2 sets it
    assert launch_devices(make_cfg("trainer.devices=2"), []) == 0
    assert launch_devices(make_cfg(), []) == 0
    with pytest.raises(GanrunError, match="trainer.devices=3 but torchrun started 2 processes"):
        launch_devices(make_cfg("trainer.devices=3"), [])
    trainer = make_cfg("trainer.sync_batchnorm=true").trainer
    check(trainer, torch.device("cpu"), Ranks(0, 1))  # one process: nothing to synchronise
    with pytest.raises(GanrunError, match="trainer.sync_batchnorm=true needs CUDA"):
        check(trainer, torch.device("cpu"), Ranks(1, 2))


# ------------------------------------------------------------------ 2 ranks == 1 rank on 2B


# SGD: its update is proportional to the averaged gradient (Adam's and RMSprop's first steps
# are scale-free and would hide a sum in place of a mean)
SGD = [
    *(f"optimizer.{p}._target_=torch.optim.SGD" for p in "gd"),
    *(f"~optimizer.{p}.betas" for p in "gd"),
    *(f"optimizer.{p}.lr=0.1" for p in "gd"),
]
CASES = {  # BN-free models, so per-rank batches see the same ops as one global batch
    "ns": ["model=mlp", "dataset=ring8", "loss=ns"],
    "wgan_gp": ["model=mlp", "dataset=ring8", "loss=wgan_gp"],  # double backward through D
    "acgan": ["model=mlp", "dataset=digits", "conditioning=acgan"],  # D's aux head under DDP
    # 2 micro-batches of B/2 per rank (gradients synchronised once per phase): the same update
    "ns_accumulate2": ["model=mlp", "dataset=ring8", "loss=ns", "trainer.accumulate=2"],
}
B = 8  # per rank


def counting_allreduce(counter: dict, bucket):
    """DDP's default all-reduce, counted (a comm hook: one call per gradient bucket synced)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    counter["calls"] += 1
    return allreduce_hook(None, bucket)


def one_update(cfg: dict, ranks: Ranks, batch_size: int) -> dict[str, torch.Tensor]:
    """One D step and one G step as fit() makes them, this rank's share of global batch 0 and
    of a fixed global z, in trainer.accumulate micro-batches; returns the plain G's and D's
    state after the update (and, under DDP, how many gradient all-reduces each player ran)."""
    cfg = OmegaConf.create(cfg)
    data = build_data(cfg)
    cpu = torch.device("cpu")
    state = build_state(cfg, data.shape, cpu, data.num_classes)
    loss = build_loss(cfg)
    wrap_models(state, cpu, ranks, sync_batchnorm=False)
    real, labels = next(rank_batches(data, batch_size, cfg.seed, 0, cpu, ranks))
    labels = labels if cfg.get("conditioning") else None
    rows = slice(ranks.rank * batch_size, (ranks.rank + 1) * batch_size)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, batch_size * ranks.world, cfg.model.z_dim, generator=gen)
    # the gradient penalty draws its interpolation weights from the global RNG, one per
    # sample and in order: rank r skips the rows of the ranks before it
    torch.manual_seed(7)
    torch.rand(ranks.rank * batch_size)
    G, D = state.players["G"], state.players["D"]
    calls = {name: {"calls": 0} for name in "GD"}
    if ranks.world > 1:
        for name, player in state.players.items():
            player.net.register_comm_hook(calls[name], counting_allreduce)
    k = cfg.trainer.get("accumulate", 1)
    parts = [slice(i * batch_size // k, (i + 1) * batch_size // k) for i in range(k)]

    def micro(z_rows):
        y = [None] * k if labels is None else [labels[p] for p in parts]
        return [MicroBatch(real[p], y_p, z_rows[p]) for p, y_p in zip(parts, y)]

    d_step(G, D, loss, micro(z[0, rows]), contextlib.nullcontext)
    g_step(G, D, loss, micro(z[1, rows]), contextlib.nullcontext)
    return {
        **{f"G.{k}": v for k, v in unwrap(state.players["G"].net).state_dict().items()},
        **{f"D.{k}": v for k, v in unwrap(state.players["D"].net).state_dict().items()},
        **{f"calls/{name}": torch.tensor(c["calls"]) for name, c in calls.items()},
    }


def initial(cfg: dict) -> dict[str, torch.Tensor]:
    """G's and D's state before any step."""
    cfg = OmegaConf.create(cfg)
    data = build_data(cfg)
    state = build_state(cfg, data.shape, torch.device("cpu"), data.num_classes)
    return {
        **{f"G.{k}": v for k, v in state.players["G"].net.state_dict().items()},
        **{f"D.{k}": v for k, v in state.players["D"].net.state_dict().items()},
    }


def _ddp_worker(
    rank: int, world: int, store: str, cfgs: dict[str, dict], smoke: dict, out: str
) -> None:
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    try:
        results = {name: one_update(cfg, Ranks(rank, world), B) for name, cfg in cfgs.items()}
        # a signal on rank 1 only: every rank learns of it in the same step (and stops there)
        results["any_rank"] = {"signal": torch.tensor([any_rank(rank == 1), any_rank(False)])}
        torch.save(results, Path(out) / f"rank{rank}.pt")
        # the whole of train() with each rank given its own folder: only rank 0's is written
        train(OmegaConf.create(smoke), Path(out) / f"run{rank}")
    finally:
        dist.destroy_process_group()


def test_two_ranks_of_b_update_like_one_process_of_2b(make_cfg, tmp_path):
    """After one D and one G step, 2 DDP ranks with batch B hold the parameters one process
    gets with batch 2B (the same data rows and latents), for the ns loss, WGAN-GP (whose
    penalty's gradients DDP must average too) and ACGAN (D's class head, reached past the DDP
    wrapper); one process on rank 0's rows alone ends elsewhere (the check can fail).
    Then train() on both ranks, each told its own folder: rank 1 writes nothing at all."""
    cfgs = {
        name: OmegaConf.to_container(make_cfg(*o, *SGD), resolve=True, enum_to_str=True)
        for name, o in CASES.items()
    }
    smoke = OmegaConf.to_container(make_cfg(), resolve=True, enum_to_str=True)
    args = (2, str(tmp_path / "store"), cfgs, smoke, str(tmp_path))
    mp.spawn(_ddp_worker, args=args, nprocs=2)
    assert not (tmp_path / "run1").exists()
    metrics = (tmp_path / "run0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in metrics] == [1, 2, 3, 4]
    assert torch.load(tmp_path / "run0/checkpoints/last.pt", weights_only=True)["step"] == 4
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["any_rank"]["signal"].tolist() for r in ranks] == [[True, False], [True, False]]
    torch.set_num_threads(1)
    for name, cfg in cfgs.items():
        single = one_update(cfgs[name.split("_accumulate")[0]], Ranks(), 2 * B)
        init = initial(cfg)
        half = one_update(cfg, Ranks(), B)  # rank 0's rows, no averaging
        for key, expected in single.items():
            if key.startswith("calls/"):
                continue
            for r in range(2):
                torch.testing.assert_close(ranks[r][name][key], expected, msg=f"{name} {key}")
        moved = [k for k in init if not torch.equal(single[k], init[k])]
        assert any(k.startswith("G.") for k in moved) and any(k.startswith("D.") for k in moved)
        assert any(not torch.allclose(half[k], single[k], rtol=0, atol=1e-6) for k in moved)
    # accumulation syncs once per phase: as many all-reduces as without it (and some)
    for r in range(2):
        for player in "GD":
            plain, accumulated = (ranks[r][c][f"calls/{player}"] for c in ("ns", "ns_accumulate2"))
            assert int(accumulated) == int(plain) >= 1, (r, player)


# ------------------------------------------------------------------ torchrun end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_torchrun_two_ranks_write_one_run_that_resumes(tmp_path):
    """`torchrun --nproc_per_node=2 -m ganrun train debug=smoke`: exit 0, one run folder whose
    metrics.jsonl has each step once and whose checkpoint loads strictly into plain models;
    `ganrun train resume=<run> trainer.devices=2 trainer.max_steps=6` continues it to step 6."""
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2"]
    first = _run(
        tmp_path, *launcher, f"--master_port={_free_port()}", "-m", "ganrun", "train",
        "debug=smoke",
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    runs = sorted((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs
    run = runs[0]
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert first.stdout.count("step 3/4 ") == 1  # rank 1 prints nothing
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "last.pt",
        "step_0000002.pt",
        "step_0000004.pt",
    ]
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4
    cfg, shape = OmegaConf.create(ckpt["config"]), tuple(ckpt["data"]["shape"])
    build_generator(cfg.model, shape).load_state_dict(ckpt["players"]["G"]["net"], strict=True)
    build_discriminator(cfg, shape).load_state_dict(ckpt["players"]["D"]["net"], strict=True)

    resumed = _run(
        tmp_path, "-m", "ganrun", "train", f"resume={run}", "trainer.max_steps=6",
        "trainer.devices=2",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted((tmp_path / "outputs").glob("*/*")) == [run]
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 6
