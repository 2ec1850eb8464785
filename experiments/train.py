"""Train one network of the paper, write its result record.

Example (the paper's MNIST setting, from the authors' README)::

  python -m experiments.train --dataset mnist --width 5000 --noise-type 1 \\
      --alpha 1.75 --sigma 0.003 --lr 0.01 --batch-size 5000 --seed 1 \\
      --target-accuracy 95 --out results/mnist_noisy_seed1

Writes ``OUT/record.json`` (config, history, final metrics, status, wall time)
and ``OUT/params.npz``. A finished record of the same config in OUT is kept
unless ``--force``; a record of another config is refused (the message lists
what differs). Ctrl-C or SIGTERM stops at the next evaluation, writes
``OUT/checkpoint/`` and the record (status ``interrupted``), and exits with
128 + the signal's number; rerunning the same command resumes from the
checkpoint (also written every ``--checkpoint-every-s`` seconds) and ends
with the same parameters, bit for bit, as a run never stopped.
"""

from __future__ import annotations

import argparse
import json
import sys

from experiments.cli import (
  add_config_flags,
  add_run_flags,
  check_or_exit,
  command,
  config_from_args,
  load_data_or_exit,
  refuse_damaged,
  run_options,
)
from experiments.out_dir import prepare_out_dir
from htsgd_jax.config import TrainConfig, check_fits

CHECKPOINT_DIR = "checkpoint"


def default_out(cfg: TrainConfig) -> str:
  noise = f"t{cfg.noise_type}_a{cfg.alpha:g}_s{cfg.sigma:g}" if cfg.noisy else "plain"
  return (
    f"results/{cfg.dataset}_{cfg.model}_n{cfg.width}_{noise}_seed{cfg.seed}-{cfg.fingerprint()}"
  )


def parser() -> argparse.ArgumentParser:
  """The command line; builds without JAX, so ``--help`` answers at once."""
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  add_config_flags(parser, TrainConfig)
  parser.add_argument(
    "--out",
    default=None,
    help="run directory (default: results/<derived name>-<config fingerprint>)",
  )
  add_run_flags(parser, "retrain even if OUT holds a finished run or a run of another config")
  return parser


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  # What the work needs (JAX among it), imported once the command line parsed.
  from experiments.pipeline import read_checked_record
  from htsgd_jax import checkpoints, interrupts, records
  from htsgd_jax.driver import Trainer

  options = run_options(args)
  cfg = config_from_args(TrainConfig, args)
  out = prepare_out_dir(args.out or default_out(cfg))
  checkpoint_dir = out / CHECKPOINT_DIR
  if options.force:
    checkpoints.clear(checkpoint_dir)
  else:
    record = read_checked_record(out, cfg)
    if records.is_finished(out, record):
      print(
        f"{out} already holds this run, finished ({record['status']}); pass --force to retrain."
      )
      return 0
  dataset = load_data_or_exit(cfg)
  check_or_exit(check_fits, cfg, dataset)
  trainer = Trainer([cfg], dataset)
  try:
    (result,) = trainer.run(
      progress=options.progress,
      checkpoint_dir=checkpoint_dir,
      checkpoint_every_s=options.checkpoint_every_s,
    )
  except records.DamagedFileError as err:
    refuse_damaged(err)
  records.write_run(out, result.record(), result.params)
  print(
    json.dumps(
      records.json_safe(
        dict(
          out=str(out),
          status=result.status,
          steps=result.steps,
          wall_time_s=round(result.wall_time_s, 1),
          **{k: round(v, 4) for k, v in result.final.items()},
        )
      ),
      indent=1,
    )
  )
  if trainer.stop_signal:
    print(
      f"{trainer.stop_signal}: checkpoint in {checkpoint_dir}; rerun the same command to resume.",
      file=sys.stderr,
    )
    return interrupts.exit_code(trainer.stop_signal)
  checkpoints.clear(checkpoint_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
