"""Train one network of the paper, write its result record.

Example (the paper's MNIST setting, from the authors' README)::

  python -m experiments.train --dataset mnist --width 5000 --noise-type 1 \\
      --alpha 1.75 --sigma 0.003 --lr 0.01 --batch-size 5000 --seed 1 \\
      --target-accuracy 95 --out results/mnist_noisy_seed1

Writes ``OUT/record.json`` (config, history, final metrics, status, wall time)
and ``OUT/params.npz``. A finished record in OUT is kept unless ``--force``.
Ctrl-C stops training and still writes the record (status ``interrupted``).
"""

from __future__ import annotations

import argparse
import json
import sys

from experiments.cli import add_config_flags, config_from_args, load_data_or_exit
from htsgd_jax import records
from htsgd_jax.train import TrainConfig, train


def default_out(cfg: TrainConfig) -> str:
  noise = f"t{cfg.noise_type}_a{cfg.alpha:g}_s{cfg.sigma:g}" if cfg.noisy else "plain"
  return f"results/{cfg.dataset}_{cfg.model}_n{cfg.width}_{noise}_seed{cfg.seed}"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_config_flags(parser, TrainConfig)
  parser.add_argument("--out", default=None, help="run directory (default: results/<derived name>)")
  parser.add_argument("--force", action="store_true", help="retrain even if OUT holds a finished run")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  cfg = config_from_args(TrainConfig, args)
  out = args.out or default_out(cfg)
  if records.is_finished(out) and not args.force:
    print(f"{out} already holds a finished run ({records.read_record(out)['status']});"
          " pass --force to retrain.")
    return 0
  dataset = load_data_or_exit(cfg)
  try:
    result = train(cfg, dataset, progress=not args.no_progress)
  except ValueError as err:  # settings that only fail against the data (batch size)
    raise SystemExit(f"error: {err}") from None
  records.write_run(out, result.record(), result.params)
  print(json.dumps(dict(out=out, status=result.status, steps=result.steps,
                        wall_time_s=round(result.wall_time_s, 1),
                        **{k: round(v, 4) for k, v in result.final.items()}), indent=1))
  return 0 if result.status != "interrupted" else 130


if __name__ == "__main__":
  sys.exit(main())
