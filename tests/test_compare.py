"""experiments.compare: the equal-accuracy search, smallest versions built for real, the command."""

import csv
import dataclasses

import jax
import numpy as np
import pytest

from experiments.methods import METHODS
from htsgd_jax import compression, models
from htsgd_jax.training import TrainConfig


# ----------------------------------------------------------------- compare
@pytest.fixture(scope="module")
def compared(tmp_path_factory):
  """The compare command end to end on a small digits preset (tuning, runs, reports)."""
  from experiments import compare, methods
  from experiments.presets import Experiment

  exp = Experiment(
    "digits_fcn_tiny",
    TrainConfig(
      dataset="digits",
      width=32,
      lr=0.1,
      batch_size=100,
      max_steps=60,
      eval_every=30,
      target_accuracy=None,
      noise_type=2,
      alpha=1.75,
      sigma=0.05,
      converge_on="before_noise",
    ),
    seeds=(1, 2, 3, 4, 5),
    group_lasso_grid=(0.1, 1.0),
  )
  out = tmp_path_factory.mktemp("compare")
  argv = ["--preset", "tiny", "--out", str(out), "--no-progress", "--timing-repeats", "2"]

  def run():
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(compare, "get_experiments", lambda preset, command="reproduce": [exp])
      mp.setattr(methods, "SIGMA_FACTORS", (0.3, 3.0))
      return compare.main(argv)

  return out, run(), compare, run


def test_compare_reports_every_method_over_five_seeds(compared):
  from experiments import smallest

  out, code, compare, _ = compared
  assert code == 0
  rows = list(csv.DictReader(open(out / "compare.csv")))
  assert sorted({r["method"] for r in rows}) == sorted(METHODS)
  for method in METHODS:
    assert sorted(int(r["seed"]) for r in rows if r["method"] == method) == [1, 2, 3, 4, 5]
  for r in rows:
    # The compact network computes the masked one's logits, and is as small as it says.
    assert float(r["compact_mismatch"]) <= smallest.MATCH_TOLERANCE
    assert int(r["compact_parameters"]) <= int(r["full_parameters"])
    if r["reached_target"] == "True":
      assert float(r["pruned_test_accuracy"]) >= float(r["target_accuracy"]) - 1e-4
    for b in smallest.LATENCY_BATCHES:
      assert float(r[f"compact_latency_b{b}_ms"]) > 0
  table = (out / "compare.md").read_text()
  for method in METHODS:
    assert f"| {method} |" in table
  tuning = (out / "tuning.md").read_text()
  assert tuning.count("✓") == len(METHODS)  # one strength chosen per method
  assert (out / "pareto.png").stat().st_size > 0
  curves = list(csv.DictReader(open(out / "curves.csv")))
  points = len(np.unique(np.round(np.asarray(compression.SEARCH_GRID) * 32)))
  assert len(curves) == len(rows) * points


def test_compare_reports_robustness_gap_and_spectra_of_full_and_smallest_networks(compared):
  out, _, compare, _ = compared
  rows = list(csv.DictReader(open(out / "compare.csv")))
  eps = (0.05, 0.1, 0.2)  # the preset's default grid
  for r in rows:
    # ε = 0 is the clean accuracy (digits' 500 test examples are all attacked).
    assert float(r["full_robust_0"]) == pytest.approx(float(r["test_accuracy"]), abs=1e-3)
    assert float(r["smallest_robust_0"]) == pytest.approx(
      float(r["pruned_test_accuracy"]), abs=1e-3
    )
    for network in ("full", "smallest"):
      robust = [float(r[f"{network}_robust_{e:g}"]) for e in eps]
      assert all(0 <= a <= 100 for a in robust)
      assert float(r[f"{network}_hidden_0_sigma_max"]) > 0
      assert 0 < float(r[f"{network}_hidden_0_top_share"]) <= 1
    # Removing units can only lower the top singular value, and raise the top unit's share.
    assert float(r["smallest_hidden_0_sigma_max"]) <= float(r["full_hidden_0_sigma_max"]) + 1e-6
    assert float(r["smallest_hidden_0_top_share"]) >= float(r["full_hidden_0_top_share"]) - 1e-9
  # The attack bites: at the largest ε plain SGD's networks lose accuracy.
  plain = [r for r in rows if r["method"] == "plain"]
  assert np.mean([float(r["full_robust_0.2"]) for r in plain]) < np.mean(
    [float(r["test_accuracy"]) for r in plain]
  )
  table = (out / "robustness.md").read_text()
  for method in METHODS:
    assert f"| {method} | full | 5 |" in table and f"| {method} | smallest | 5 |" in table
  assert "robust acc. ε = 0.2" in table and "(p " in table
  assert (out / "robustness.png").stat().st_size > 0


def test_compare_tunes_on_validation_only(compared):
  out, _, _, _ = compared
  import json

  for record in (out / "tuning").glob("*/record.json"):
    meta = json.loads(record.read_text())
    assert meta["config"]["validation"] == 0.2
    assert meta["dataset"]["name"] == "digits:validation"
  for record in (out / "runs").glob("*/record.json"):
    assert json.loads(record.read_text())["config"]["validation"] == 0.0


def test_compare_rerun_trains_nothing(compared, capsys):
  out, _, _, run = compared
  before = (out / "compare.csv").read_text()
  assert run() == 0
  assert "] training" not in capsys.readouterr().out
  after = (out / "compare.csv").read_text()
  strip = [[r.split(",")[:12] for r in t.splitlines()] for t in (before, after)]
  assert strip[0] == strip[1]  # same runs, same search (timings aside)


def test_compare_across_widths_with_a_fixed_budget(tmp_path, capsys):
  import json

  from experiments import compare, methods
  from experiments.presets import Experiment

  exp = Experiment(
    "digits_fcn_tiny",
    TrainConfig(
      dataset="digits", width=32, lr=0.1, batch_size=100, max_steps=40, eval_every=20,
      target_accuracy=50.0, noise_type=2, alpha=1.75, sigma=0.05, converge_on="before_noise",
    ),
    seeds=(1, 2, 3),
    widths=(16, 32),  # as NAME:widths presets set them
    group_lasso_grid=(0.1,),
  )  # fmt: skip
  argv = [
    "--preset", "tiny", "--out", str(tmp_path), "--no-progress", "--timing-repeats", "1",
    "--methods", "type2", "group_lasso", "--budget", "fixed",
    "--tuning-seeds", "101", "--fine-tune-steps", "30",
  ]  # fmt: skip
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(compare, "get_experiments", lambda preset, command="reproduce": [exp])
    mp.setattr(methods, "SIGMA_FACTORS", (1.0,))
    assert compare.main(argv) == 0
  table = (tmp_path / "widths.md").read_text()
  for width in (16, 32):
    for method in ("plain", "type2", "group_lasso"):
      assert f"| {width} | {method} |" in table
    assert (tmp_path / f"n{width}" / "compare.md").is_file()
    assert (tmp_path / f"n{width}" / "robustness.md").is_file()
    for record in (tmp_path / f"n{width}" / "runs").glob("*/record.json"):
      meta = json.loads(record.read_text())
      # A fixed budget: the target (50%, reached at once) stops nothing.
      assert meta["config"]["width"] == width and meta["steps"] == 40
      assert meta["config"]["target_accuracy"] is None
  rows = list(csv.DictReader(open(tmp_path / "widths.csv")))
  assert sorted({int(r["width"]) for r in rows}) == [16, 32] and len(rows) == 2 * 3 * 3
  # Fine-tuning at the smallest size wins accuracy back: reported beside the pruned accuracy.
  assert "fine-tuned: reach target" in table and "30 steps of plain SGD" in table
  pruned = np.asarray([float(r["pruned_test_accuracy"]) for r in rows])
  tuned = np.asarray([float(r["fine_tuned_test_accuracy"]) for r in rows])
  assert tuned.mean() > pruned.mean()
  for r in rows:
    # Fine-tuning keeps removed units removed: never larger than the network it started from.
    assert float(r["fine_tuned_parameters_kept"]) <= float(r["parameters_kept"]) + 1e-12
    reached = float(r["fine_tuned_test_accuracy"]) >= float(r["target_accuracy"]) - 1e-4
    assert r["fine_tuned_reached_target"] == str(reached)
  assert "30 fine-tune steps" in (tmp_path / "n32" / "compare.md").read_text()
  assert (tmp_path / "widths.png").stat().st_size > 0

  # The same widths gathered from their folders (as if each had run alone): the same reports.
  from experiments import gather_widths

  gathered = tmp_path / "gathered"
  assert (
    gather_widths.main([str(tmp_path / "n32"), str(tmp_path / "n16"), "--out", str(gathered)]) == 0
  )
  assert (gathered / "widths.csv").read_bytes() == (tmp_path / "widths.csv").read_bytes()
  assert (gathered / "widths.md").read_text().startswith(table)
  assert f"from `{tmp_path / 'n32'}`, `{tmp_path / 'n16'}`." in (gathered / "widths.md").read_text()


@pytest.mark.parametrize(
  "flags, message",
  [
    (["--seeds", "1"], "at least 2 seeds"),
    (["--delta", "0"], "--delta"),
    (["--validation", "1"], "--validation"),
    (["--preset", "quick"], "compare takes one"),
    (["--tuning-seeds", "3", "3"], "repeats a seed"),
    (["--widths", "100", "100"], "--widths must be distinct"),
    (["--widths", "0"], "--widths must be distinct and >= 1"),
    (["--eps", "0.1", "nan"], "--eps are radii"),
    (["--robust-examples", "0"], "--robust-examples"),
    (["--budget", "forever"], "invalid choice"),
    (["--fine-tune-steps", "-1"], "--fine-tune-steps"),
  ],
)
def test_compare_refuses_bad_flags_before_training(tmp_path, flags, message, capsys):
  from experiments import compare

  with pytest.raises(SystemExit) as exit_info:
    compare.main(["--out", str(tmp_path / "o"), *flags])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "o").exists()


def test_the_compact_check_compares_in_float32_under_bfloat16_compute(trained_digits):
  """compare --compute-dtype bfloat16 once stopped after all its training: the bfloat16 masked
  network differs from the float32 compact one by rounding (1.5e-3 of the logits at MNIST
  n = 5000), which the 1e-4 check took for a bug in compact_dense."""
  from experiments import smallest
  from experiments.runs import FinishedRun, RunSpec

  ds, apply, params = trained_digits
  found = compression.search_prunable(apply, params, ds.x_test, ds.y_test, [[50.0], [50.0]])
  assert (found.units[:, 0] > 0).all()  # both are compacted, so both are checked
  cfg = TrainConfig(dataset="digits", width=48, compute_dtype="bfloat16")
  trained = [
    FinishedRun(RunSpec(f"plain_{s}", "plain", dataclasses.replace(cfg, seed=s)), {}, p)
    for s, p in zip((1, 2), params)
  ]
  rows, _ = smallest.measure(trained, found, ds, timing_repeats=1)
  assert all(r["compact_mismatch"] <= smallest.MATCH_TOLERANCE for r in rows)


def test_a_cnns_smallest_version_is_built_for_real():
  """compare's compaction of a VGG: fewer filters and parameters, the masked logits."""

  from experiments import smallest
  from htsgd_jax import compression
  from htsgd_jax.config import TrainConfig
  from htsgd_jax.data import Dataset

  cfg = TrainConfig(dataset="images", model="vgg11", width=4, conv_column="filter")
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6, 32, 32, 1)).astype(np.float32)
  ds = Dataset("images", x, np.zeros(6, np.int32), x, np.zeros(6, np.int32), 10, "numpy")
  model = models.build_model("vgg11", 10, width=4)
  params = model.init(jax.random.key(0), x[:1])["params"]
  params["conv_0"]["kernel"] = np.abs(params["conv_0"]["kernel"])  # ReLUs stay partly open
  masked = compression.without_units(params, 16, 32, "filter")  # half of every hidden layer
  full, small = smallest.as_is(params, cfg, ds), smallest.compact(masked, cfg, ds)
  want = model.apply({"params": masked}, x)
  np.testing.assert_allclose(small.apply(small.params, x), want, rtol=1e-5, atol=1e-6)
  assert (full.units, small.units) == (8 + 16 + 16 + 32 * 4, (8 + 16 + 16 + 32 * 4) // 2)
  assert small.cost["parameters"] < full.cost["parameters"] / 3
  assert small.cost["flops"] < full.cost["flops"] / 2
  assert full.cost["parameters"] == sum(np.size(v) for v in jax.tree.leaves(params))
