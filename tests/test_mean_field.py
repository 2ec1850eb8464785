"""The theorem's qualitative claim on a tiny instance with fixed seeds."""

from experiments import mean_field


def test_pruning_error_falls_with_width_only_for_heavy_tails(tmp_path):
  cfg = mean_field.MeanFieldConfig(
    datasets=("teacher_student",), widths=(30, 1000), alphas=(1.5, 2.0), seeds=(1, 2), steps=200
  )
  results = mean_field.run(cfg, tmp_path, progress=False)
  assert len(results) == 2 * 2 * 2
  summary = mean_field.summarise(results, cfg)
  heavy = summary[("teacher_student", 1.5)]
  gauss = summary[("teacher_student", 2.0)]
  # α < 2: keeping the top 10% of columns loses clearly less at n = 1000 than at n = 30.
  assert heavy["mean_error"][-1] < 0.8 * heavy["mean_error"][0]
  # α = 2: no such gain (Gaussian columns: a constant share of the energy stays out).
  assert gauss["mean_error"][-1] > 0.95 * gauss["mean_error"][0]
  # Rerunning reuses results.json instead of retraining.
  assert mean_field.run(cfg, tmp_path, progress=False) == results
