"""The theorem, made visible: compressibility of the mean-field network grows with width.

  python -m experiments.mean_field                      # default size, ~5 min on 2 cores
  python -m experiments.mean_field --widths 30 300 3000 --seeds 1 2 --out results/mf_small

Trains the one-hidden-layer mean-field network ``f(x) = (1/n) Σ a_j relu(<w_j, x>)``
with its second layer frozen, on the synthetic teacher–student task and on
ECG5000, for widths over two orders of magnitude, α ∈ {1.5, 1.75, 2.0} and
several seeds (all α and seeds of one width in one compiled program). Noise:
type 3 (one isotropic sub-Gaussian α-stable vector per column, the theory's
setting).

Time scaling: each column moves by ``η ∇_{w_j}`` of the per-unit loss (the
mean-field ``1/n`` is undone by training at ``lr = η n``), plus
``σ η^(1/α) ξ_j`` (σ is divided by ``n^(1/α)`` to cancel the lr scaling), for
``K`` steps: total time ``T = K η`` and total noise ``~ σ T^(1/α)``, the same
for every n. The theorem asks for ``η <= n^(-α/2-1)``; at ``T`` fixed that
needs ``~n^(α/2+1)`` steps (10⁴ times more at n = 3000 than at n = 30), far
beyond 2 CPU cores, so the default keeps ``η`` fixed for all n
(``--step-rule theorem`` applies ``η = η_0 (n_0/n)^(α/2+1)`` with
``K = T/η``, feasible for small widths only).

Writes to OUT (default ``results/mean_field``): ``results.json`` (one entry per
run, written after each width, reused on rerun), ``relative_error.png``
(``‖Θ^(κn) − Θ‖_F / ‖Θ‖_F`` at κ = 0.1 against n), ``column_norms.png``
(survival functions at the largest n with the fitted Pareto tails),
``tail_index.png`` (Hill estimate of the column-norm tail against the
injected α) and ``summary.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

from experiments.cli import add_compute_dtype_flag, command
from htsgd_jax.config import TrainConfig, group_runs


@dataclasses.dataclass(frozen=True)
class MeanFieldConfig:
  """The experiment's grid and dynamics."""

  datasets: tuple[str, ...] = ("teacher_student", "ecg5000")
  widths: tuple[int, ...] = (30, 100, 300, 1000, 3000)
  alphas: tuple[float, ...] = (1.5, 1.75, 2.0)
  seeds: tuple[int, ...] = (1, 2, 3)
  eta: float = 0.05  # per-unit step size η
  steps: int = 400  # K; total time T = K η
  sigma: float = 1.0  # noise scale: σ η^(1/α) per step, ~σ T^(1/α) in total
  batch_size: int = 100
  keep_fraction: float = 0.1  # κ
  step_rule: str = "fixed"  # or "theorem"
  reference_width: int = 30  # n_0 of the theorem rule
  compute_dtype: str = "float32"  # of the matrix products (see htsgd_jax.models)


def run_configs(cfg: MeanFieldConfig, dataset: str, width: int) -> list[TrainConfig]:
  """One TrainConfig per (α, seed) at this width, all in one compiled program."""
  out = []
  for alpha in cfg.alphas:
    eta, steps = cfg.eta, cfg.steps
    if cfg.step_rule == "theorem":
      eta = cfg.eta * (cfg.reference_width / width) ** (alpha / 2 + 1)
      steps = int(round(cfg.steps * cfg.eta / eta))
    for seed in cfg.seeds:
      out.append(
        TrainConfig(
          dataset=dataset,
          model="mean_field",
          width=width,
          freeze_classifier=True,
          noise_type=3,
          alpha=alpha,
          sigma=cfg.sigma * width ** (-1 / alpha),
          lr=eta * width,
          batch_size=cfg.batch_size,
          seed=seed,
          target_accuracy=None,
          max_steps=steps,
          eval_every=max(steps // 4, 1),
          compute_dtype=cfg.compute_dtype,
        )
      )
  return out


def run(cfg: MeanFieldConfig, out: pathlib.Path, progress: bool = True) -> list[dict]:
  """Trains what is missing, returns one result dict per run."""
  from htsgd_jax import pruning, records, tail_index
  from htsgd_jax.data import load_dataset
  from htsgd_jax.driver import Trainer

  cache = out / "results.json"
  results = json.loads(cache.read_text()) if cache.is_file() else []
  done = {(r["dataset"], r["width"], r["alpha"], r["seed"]) for r in results}
  for name in cfg.datasets:
    dataset = load_dataset(name)
    for width in cfg.widths:
      todo = [
        c for c in run_configs(cfg, name, width) if (name, width, c.alpha, c.seed) not in done
      ]
      for group in group_runs(todo):
        for r in Trainer(group, dataset).run(progress=progress):
          hidden = np.asarray(r.params["hidden_0"]["kernel"])
          norms = np.linalg.norm(hidden, axis=0)
          results.append(
            dict(
              dataset=name,
              width=width,
              alpha=r.config.alpha,
              seed=r.config.seed,
              status=r.status,
              steps=r.steps,
              lr=r.config.lr,
              train_accuracy=r.final.get("train_accuracy"),
              test_accuracy=r.final.get("test_accuracy"),
              relative_error=float(pruning.keep_top_error(r.params, cfg.keep_fraction)),
              hill=tail_index.hill(norms, k=max(int(np.sqrt(width)), 3)) if width >= 16 else None,
              column_norms=norms.tolist(),
            )
          )
      records.write_json(cache, results)  # after each width: a stop loses one width at most
  return [
    r
    for r in results
    if r["dataset"] in cfg.datasets
    and r["width"] in cfg.widths
    and r["alpha"] in cfg.alphas
    and r["seed"] in cfg.seeds
  ]


def summarise(results: list[dict], cfg: MeanFieldConfig) -> dict:
  """Mean relative error per (dataset, α, width), and whether it falls with n."""
  table = {}
  for r in results:
    table.setdefault((r["dataset"], r["alpha"]), {}).setdefault(r["width"], []).append(
      r["relative_error"]
    )
  summary = {}
  for (dataset, alpha), by_width in sorted(table.items()):
    widths = sorted(by_width)
    means = [float(np.mean(by_width[w])) for w in widths]
    # "Falls" means by more than 5%: float ties at α = 2 must not read as a trend.
    summary[(dataset, alpha)] = dict(
      widths=widths,
      mean_error=means,
      std_error=[float(np.std(by_width[w])) for w in widths],
      decreases=means[-1] < 0.95 * means[0],
    )
  return summary


def plot(results: list[dict], cfg: MeanFieldConfig, out: pathlib.Path) -> None:
  """relative_error.png, column_norms.png and tail_index.png: one panel per dataset."""
  import matplotlib

  from experiments.files import save_figure

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  colors = dict(zip(cfg.alphas, ["tab:red", "tab:orange", "tab:blue", "tab:green"]))
  summary = summarise(results, cfg)
  figures = {
    "relative_error.png": lambda ax, name: _relative_error_panel(
      ax, name, results, cfg, summary, colors
    ),
    "column_norms.png": lambda ax, name: _column_norms_panel(ax, name, results, cfg, colors),
    "tail_index.png": lambda ax, name: _tail_index_panel(ax, name, results, cfg),
  }
  for filename, panel in figures.items():
    fig, axes = plt.subplots(
      1, len(cfg.datasets), figsize=(5 * len(cfg.datasets), 3.8), squeeze=False
    )
    for ax, name in zip(axes[0], cfg.datasets):
      panel(ax, name)
    fig.tight_layout()
    save_figure(fig, out / filename)


def _relative_error_panel(ax, name, results, cfg: MeanFieldConfig, summary, colors) -> None:
  """The pruned network's relative error against width, one line per α."""
  for alpha in cfg.alphas:
    s = summary.get((name, alpha))
    if not s:
      continue
    errs = [
      [
        r["relative_error"]
        for r in results
        if (r["dataset"], r["alpha"], r["width"]) == (name, alpha, w)
      ]
      for w in s["widths"]
    ]
    ax.errorbar(
      s["widths"],
      s["mean_error"],
      yerr=[np.std(e) for e in errs],
      marker="o",
      color=colors.get(alpha),
      capsize=3,
      label=f"α = {alpha:g}",
    )
  ax.set(
    xscale="log",
    yscale="log",
    xlabel="width n",
    ylabel=f"‖Θ^(κn) − Θ‖ / ‖Θ‖, κ = {cfg.keep_fraction:g}",
    title=name,
  )
  ax.grid(alpha=0.3, which="both")
  ax.legend()


def _column_norms_panel(ax, name, results, cfg: MeanFieldConfig, colors) -> None:
  """The widest networks' column-norm survival function, with a Pareto fit per α."""
  from htsgd_jax import tail_index

  n_max = max(cfg.widths)
  for alpha in cfg.alphas:
    norms = np.concatenate(
      [
        r["column_norms"]
        for r in results
        if (r["dataset"], r["alpha"], r["width"]) == (name, alpha, n_max)
      ]
      or [[]]
    )
    if norms.size == 0:
      continue
    x = np.sort(norms)
    surv = 1 - np.arange(x.size) / x.size
    ax.loglog(x, surv, color=colors.get(alpha), label=f"α = {alpha:g}")
    k = max(int(np.sqrt(x.size)), 3)
    a_hat = tail_index.hill(x, k=k)
    xs = np.geomspace(x[-k], x[-1], 20)
    ax.loglog(
      xs,
      (k / x.size) * (xs / x[-k]) ** -a_hat,
      "--",
      color=colors.get(alpha),
      label=f"Pareto fit, α̂ = {a_hat:.2f}",
    )
  ax.set(xlabel="column norm ‖w_j‖", ylabel="P(norm > x)", title=f"{name}, n = {n_max}")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)


def _tail_index_panel(ax, name, results, cfg: MeanFieldConfig) -> None:
  """Hill's estimate of the column-norm tail against the injected α, per width."""
  for w in cfg.widths:
    rs = [r for r in results if r["dataset"] == name and r["width"] == w and r["hill"] is not None]
    if rs:
      ax.scatter([r["alpha"] for r in rs], [r["hill"] for r in rs], label=f"n = {w}", s=18)
  ax.plot([1.4, 2.1], [1.4, 2.1], "k--", lw=1, label="α̂ = α")
  # Log scale: Gaussian columns give α̂ of 10–50, which would flatten α < 2.
  ax.set(
    xlabel="injected α", ylabel="Hill estimate of the column-norm tail", title=name, yscale="log"
  )
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def summary_markdown(results: list[dict], cfg: MeanFieldConfig) -> str:
  summary = summarise(results, cfg)
  widths = sorted({w for s in summary.values() for w in s["widths"]})
  lines = [
    "| dataset | α | " + " | ".join(f"n={w}" for w in widths) + " | falls >5% with n |",
    "|---|---|" + "---|" * len(widths) + "---|",
  ]
  for (dataset, alpha), s in summary.items():
    by_w = dict(zip(s["widths"], s["mean_error"]))
    sd = dict(zip(s["widths"], s["std_error"]))
    cells = " | ".join(f"{by_w[w]:.2f} ± {sd[w]:.2f}" if w in by_w else "—" for w in widths)
    lines.append(f"| {dataset} | {alpha:g} | {cells} | {'yes' if s['decreases'] else 'no'} |")
  hill = {}
  for r in results:
    if r["hill"] is not None and r["width"] == max(widths):
      hill.setdefault((r["dataset"], r["alpha"]), []).append(r["hill"])
  lines += [
    "",
    f"Hill estimate of the column-norm tail at n = {max(widths)} (mean over seeds):",
    "",
  ]
  lines += [f"- {d}, α = {a:g}: α̂ = {np.mean(v):.2f}" for (d, a), v in sorted(hill.items())]
  return "\n".join(lines) + "\n"


@command
def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  defaults = MeanFieldConfig()
  helps = dict(
    datasets="datasets to train on (teacher_student, ecg5000, ...)",
    widths="widths n of the hidden layer",
    alphas="tail indices α of the noise",
    seeds="seeds per (width, α)",
    eta="per-unit step size η (the learning rate is η·n)",
    sigma="noise scale: each step adds σ·η^(1/α) times an α-stable draw, per unit",
    keep_fraction="fraction κ of the columns kept by the pruning",
    steps="SGD steps K (total time T = K·η)",
    batch_size="minibatch size",
    step_rule="fixed: the same η and K at every width; theorem: η shrinks with n as in the"
    " theorem, K grows to keep T",
  )
  for name in ("datasets", "widths", "alphas", "seeds"):
    default = getattr(defaults, name)
    parser.add_argument(
      f"--{name}",
      type=type(default[0]),
      nargs="+",
      default=list(default),
      help=helps[name] + " (default: %(default)s)",
    )
  for name in ("eta", "sigma", "keep_fraction", "steps", "batch_size"):
    default = getattr(defaults, name)
    parser.add_argument(
      f"--{name.replace('_', '-')}",
      type=type(default),
      default=default,
      help=helps[name] + " (default: %(default)s)",
    )
  parser.add_argument(
    "--step-rule",
    choices=("fixed", "theorem"),
    default=defaults.step_rule,
    help=helps["step_rule"] + " (default: %(default)s)",
  )
  add_compute_dtype_flag(parser)
  parser.add_argument(
    "--out", default="results/mean_field", help="output directory (default: %(default)s)"
  )
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  args = parser.parse_args(argv)
  cfg = MeanFieldConfig(
    datasets=tuple(args.datasets),
    widths=tuple(args.widths),
    alphas=tuple(args.alphas),
    seeds=tuple(args.seeds),
    eta=args.eta,
    steps=args.steps,
    sigma=args.sigma,
    batch_size=args.batch_size,
    keep_fraction=args.keep_fraction,
    step_rule=args.step_rule,
    compute_dtype=args.compute_dtype or defaults.compute_dtype,
  )
  from experiments.files import write_text

  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  try:
    results = run(cfg, out, progress=not args.no_progress)
  except (ValueError, ModuleNotFoundError, FileNotFoundError) as err:
    raise SystemExit(f"error: {err}") from None
  plot(results, cfg, out)
  text = summary_markdown(results, cfg)
  write_text(out / "summary.md", text)
  print(
    text + f"\nwritten to {out}/ (results.json, relative_error.png, column_norms.png,"
    " tail_index.png, summary.md)"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
