"""scripts/bench_speed.py's helpers: FLOP counting, the matmul peak, fractions of it, and the
peer mode's pieces (PNG folder, the peer's output lines, in-loop rates). The real peer
(pytorch/examples' dcgan/main.py) is never run here."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_speed", REPO / "scripts" / "bench_speed.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_speed"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

PEER_LINES = [
    "[0/2][0/16] Loss_D: 1.6270 Loss_G: 4.1911 D(x): 0.4706 D(G(z)): 0.4780 / 0.0185",
    "[1/2][15/16] Loss_D: 0.0123 Loss_G: 9.8765 D(x): 0.9900 D(G(z)): 0.0100 / 0.0001",
    "  [12/25][391/1583] Loss_D: 0.5 Loss_G: 2.0 D(x): 0.7 D(G(z)): 0.2 / 0.1  ",
]
NOT_PEER_LINES = [
    "Namespace(dataset='folder', dataroot='/tmp/x', workers=2, batchSize=64)",
    "Random Seed:  0",
    "Using device: cpu",
    "  (main): Sequential(",
    "[0/2][0/16] something else",
    "",
]


# ----------------------------------------------------------------------------- FLOPs


def test_flop_counter_on_a_linear_layer_matches_the_hand_count():
    batch, n_in, n_out = 5, 8, 4
    forward = 2 * batch * n_in * n_out  # one multiply-add = 2 FLOPs; the bias add counts 0
    layer = nn.Linear(n_in, n_out)
    x = torch.randn(batch, n_in)
    assert bench.count_flops(lambda: layer(x)) == forward
    # backward of an input that needs no gradient: the weight gradient only
    assert bench.count_flops(lambda: layer(x).sum().backward()) == 2 * forward
    # with the input's gradient too: forward + grad weight + grad input = 3x
    xg = torch.randn(batch, n_in, requires_grad=True)
    assert bench.count_flops(lambda: layer(xg).sum().backward()) == 3 * forward


def test_example_step_counts_d_on_real_and_fake_and_g_through_d():
    z_dim, d = 3, 7
    G, D = nn.Linear(z_dim, d, bias=False), nn.Linear(d, 1, bias=False)
    f_g, f_d = 2 * z_dim * d, 2 * d * 1  # forward FLOPs per image
    # D on real: fwd + grad W (2 f_d); G fwd (f_g); D on detached fake: 2 f_d;
    # G's step: D fwd + grad W + grad input (3 f_d) and G's grad W (f_g; z needs none)
    expected = 7 * f_d + 2 * f_g
    assert bench.example_flops_per_image(G, D, (d,), z_dim, batch=4) == expected


def test_flops_per_image_of_the_benchmark_dcgan_do_not_depend_on_the_batch():
    case = bench.Case("DCGAN-64", "dcgan", 64, 8)
    cfg = bench.compose_cfg(case, torch.device("cpu"), bench.MODES[0], quick=True)
    shape = (3, 64, 64)
    G, D = bench.build_generator(cfg.model, shape), bench.build_discriminator(cfg, shape)
    two = bench.example_flops_per_image(G, D, shape, cfg.model.z_dim, batch=2)
    four = bench.example_flops_per_image(G, D, shape, cfg.model.z_dim, batch=4)
    assert two > 0 and two == pytest.approx(four, rel=1e-9)
    own = bench.ganrun_flops_per_image(cfg, shape)
    assert 0.5 < own / two < 2.0  # ganrun's step: the same networks, the same work order


def test_matmul_peak_is_positive_and_finite():
    gflops, inner = bench.matmul_peak(torch.device("cpu"), n=128, repeats=2, warmup=1)
    assert math.isfinite(gflops) and gflops > 0 and inner == 1


def test_matmul_peak_restores_the_matmul_precision():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        bench.matmul_peak(torch.device("cpu"), n=64, repeats=1, warmup=0)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_fraction_of_peak_against_hand_numbers():
    # 100 img/s x 2 GFLOP/img = 200 GFLOP/s of a 1000 GFLOP/s peak
    assert bench.fraction_of_peak(100.0, 2e9, 1000.0) == pytest.approx(0.2)
    assert bench.fraction_of_peak(50.0, 4.5e9, 225.0) == pytest.approx(1.0)
    assert bench.fmt_pct(0.1234) == "12.3%" and bench.fmt_pct(None) == "-"


def test_mode_row_shows_ratio_and_percent_of_peak():
    ref = bench.Result(50.0, None)
    row = bench.mode_row("ganrun fp32", bench.Result(100.0, None), ref, 2e9, 1000.0)
    assert "100.0" in row and "2.00" in row and "20.0%" in row and row.rstrip().endswith("-")


# ------------------------------------------------------------------------- peer mode


def test_png_folder_has_the_count_size_and_layout(tmp_path):
    root = bench.write_png_folder(tmp_path / "data", 5, resolution=64, seed=0)
    files = sorted(root.rglob("*.png"))
    assert root == tmp_path / "data" and len(files) == 5
    assert {f.parent for f in files} == {root / "class0"}  # ImageFolder wants a class folder
    for f in files:
        with Image.open(f) as img:
            assert img.size == (64, 64) and img.mode == "RGB"


def test_png_folder_is_deterministic(tmp_path):
    a = bench.write_png_folder(tmp_path / "a", 3, seed=0)
    b = bench.write_png_folder(tmp_path / "b", 3, seed=0)
    c = bench.write_png_folder(tmp_path / "c", 3, seed=1)

    def contents(root):
        return [p.read_bytes() for p in sorted(root.rglob("*.png"))]

    assert contents(a) == contents(b)
    assert contents(a) != contents(c)
    assert len(set(contents(a))) == 3  # each image its own noise


def test_png_folder_is_read_by_ganruns_image_folder(tmp_path):
    from ganrun.data.folder import ImageFolder

    root = bench.write_png_folder(tmp_path / "data", 4, seed=0)
    data = ImageFolder(str(root), resolution=64, num_workers=0)
    assert len(data) == 4 and data.num_classes is None and data.shape == (3, 64, 64)


@pytest.mark.parametrize("line", PEER_LINES)
def test_peer_line_parser_reads_iteration_lines(line):
    assert bench.parse_peer_line(line) is not None


def test_peer_line_parser_numbers():
    assert bench.parse_peer_line(PEER_LINES[0]) == bench.PeerIteration(0, 2, 0, 16)
    assert bench.parse_peer_line(PEER_LINES[1]) == bench.PeerIteration(1, 2, 15, 16)
    assert bench.parse_peer_line(PEER_LINES[2]) == bench.PeerIteration(12, 25, 391, 1583)


@pytest.mark.parametrize("line", NOT_PEER_LINES)
def test_peer_line_parser_skips_other_lines(line):
    assert bench.parse_peer_line(line) is None


def test_peer_plan_and_ragged_last_batch():
    assert bench.peer_plan(32, 1024) == (2, 16, 32)
    assert bench.peer_plan(33, 1024) == (3, 16, 48)  # at least the steps asked for
    assert bench.peer_plan(32, 1000) == (2, 16, 32)  # the peer keeps the short last batch
    full, last = bench.PeerIteration(0, 2, 14, 16), bench.PeerIteration(0, 2, 15, 16)
    assert bench.peer_images(full, 1000) == 64 and bench.peer_images(last, 1000) == 40
    assert bench.peer_images(last, 1024) == 64


def test_in_loop_rate_skips_the_warm_up_iterations():
    ends = [10.0, 11.0, 12.0, 12.5, 13.0]  # the first iteration's 10 s is warm-up
    images = [64] * 5
    # iterations 3..5 over the time from the end of iteration 2: 3 * 64 / 2 s
    assert bench.in_loop_rate(ends, images, warmup=2) == pytest.approx(96.0)
    assert bench.in_loop_rate(ends, [64, 64, 64, 64, 32], warmup=1) == pytest.approx(224 / 3)
    with pytest.raises(ValueError):
        bench.in_loop_rate(ends, images, warmup=5)
    with pytest.raises(ValueError):
        bench.in_loop_rate(ends, images, warmup=0)


def test_ganrun_rows_and_peer_lines_give_the_same_rate_for_the_same_ticks():
    """The same warm-up rule on both sides: ganrun's perf/img_per_s rows every `warmup` steps,
    the first dropped, equal the peer's rate from the same iteration end times."""
    batch, warmup = 64, 2
    ends = [5.0, 6.0, 6.5, 7.0, 8.0, 8.25]  # when each of 6 iterations ended
    rows, tick, tick_step = [], 0.0, 0
    for step in range(warmup, len(ends) + 1, warmup):  # what the loop logs
        now = ends[step - 1]
        rows.append({"step": step, "perf/img_per_s": (step - tick_step) * batch / (now - tick)})
        tick, tick_step = now, step
    ganrun_rate = bench.timed_throughput(rows, warmup, batch)
    peer_rate = bench.in_loop_rate(ends, [batch] * len(ends), warmup)
    assert ganrun_rate == pytest.approx(peer_rate) == pytest.approx(4 * 64 / 2.25)


def test_peer_rate_from_timestamped_output():
    lines = [(0.0, "Namespace(dataset='folder')"), (0.5, "Random Seed:  0")]
    stamps = [3.0, 4.0, 5.0, 6.0]
    for k, t in enumerate(stamps):
        lines.append(
            (t, f"[{k // 2}/2][{k % 2}/2] Loss_D: 1.0 Loss_G: 1.0 D(x): 0.5 D(G(z)): 0.5 / 0.5")
        )
    run = bench.TimedRun(7.0, lines)
    rate, seen = bench.peer_rate(run, n_images=100, warmup=1)  # epochs of 64 + 36 images
    assert seen == 4 and rate == pytest.approx((36 + 64 + 36) / 3.0)


def test_metrics_rows_keep_the_rate_rows(tmp_path):
    rows = [
        {"step": 4, "loss/d": 1.0, "perf/img_per_s": 10.0},
        {"step": 5, "eval/fid": 3.0},
        {"step": 8, "loss/d": 1.0, "perf/img_per_s": 20.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["step"] for r in bench.metrics_rows(tmp_path)] == [4, 8]


def test_peer_defaults_and_device_flag():
    source = (
        "parser.add_argument('--nz', type=int, default=100, help='size of the latent z vector')\n"
        "parser.add_argument('--ngf', type=int, default=64)\n"
        'parser.add_argument("--ndf", type=int, default=32, help="number of filters")\n'
        "parser.add_argument('--accel', action='store_true', default=False, help='accelerator')\n"
    )
    assert bench.peer_defaults(source) == {"nz": 100, "ngf": 64, "ndf": 32, "imageSize": None}
    assert bench.peer_device_flag(source, torch.device("cuda")) == ["--accel"]
    assert bench.peer_device_flag(source, torch.device("cpu")) == []
    old = "parser.add_argument('--cuda', action='store_true', help='enables cuda')"
    assert bench.peer_device_flag(old, torch.device("cuda")) == ["--cuda"]


def test_commands_carry_the_comparison_settings(tmp_path):
    cmd = bench.peer_command(Path("/p/main.py"), Path("/d"), 2, Path("/o"), [])
    text = " ".join(cmd)
    assert cmd[1:3] == ["-u", "/p/main.py"]
    for part in ("--dataset folder", "--dataroot /d", "--niter 2", "--batchSize 64", "--workers 2"):
        assert part in text
    assert "--outf /o" in text and "--manualSeed 0" in text
    over = bench.ganrun_overrides(Path("/d"), 32, 4, torch.device("cpu"), ["trainer=fast"])
    for part in (
        "model=dcgan",
        "loss=ns",
        "dataset=image_folder",
        "dataset.root=/d",
        "dataset.resolution=64",
        "trainer.batch_size=64",
        "trainer.max_steps=32",
        "trainer.n_critic=1",
        "trainer.log_every=4",
    ):
        assert part in over
    assert over[-1] == "trainer=fast"


def test_run_timed_stamps_lines_in_order(tmp_path):
    script = "import time\nfor k in range(3):\n    print(k)\n    time.sleep(0.05)\n"
    run = bench.run_timed([sys.executable, "-c", script], tmp_path, tmp_path / "err")
    assert [line for _, line in run.lines] == ["0", "1", "2"]
    times = [t for t, _ in run.lines]
    assert times == sorted(times) and times[-1] - times[0] >= 0.08  # arrived as printed
    assert run.wall_s >= times[-1] - times[0]
    with pytest.raises(SystemExit, match="exited with 3"):
        bench.run_timed([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, tmp_path / "e")


def test_pair_ratios_divide_within_each_pair():
    peer = [(40.0, 50.0), (60.0, 30.0)]  # the machine slowed down between the pairs
    ganrun = [(32.0, 75.0), (50.0, 42.0)]
    whole, loop = bench.pair_ratios(peer, ganrun)
    assert whole == pytest.approx([1.25, 1.2]) and loop == pytest.approx([1.5, 1.4])
    with pytest.raises(ValueError):
        bench.pair_ratios(peer, ganrun[:1])


def test_load_average_is_printable():
    text = bench.load_average()
    assert text == "-" or float(text) >= 0
