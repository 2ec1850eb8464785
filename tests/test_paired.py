"""The ``experiments.paired`` command: paired differences between two runs of a preset."""


def test_paired_compares_runs_by_experiment_arm_and_seed(tmp_path, capsys):
  from experiments import paired

  fields = (
    "experiment,arm,seed,test_accuracy,fraction_pruned,pruned_test_accuracy,top_column_energy"
  )
  first = [fields, "q,noisy,1,90,0.5,80,0.3", "q,noisy,2,91,0.4,90,0.2", "q,noisy,3,92,0.1,,0.1"]
  second = [fields, "q_bfloat16,noisy,1,91,0.5,80,0.3", "q_bfloat16,noisy,2,92,0.6,90,0.2"]
  for name, lines in (("a.csv", first), ("b.csv", second)):
    (tmp_path / name).write_text("\n".join(lines) + "\n")
  assert paired.main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) == 0
  (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| q |")]
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[:3] == ["q", "noisy", "2"]  # seed 3 has no pair
  assert cells[3].startswith("+1.00 ± 0.00 (max 1.00; p 0")  # +1 point in both pairs
  assert cells[4].startswith("+10.00 ± 10.00 (max 20.00")  # fraction pruned, in points
  assert cells[-1] == "1 → 1"  # seed 1 loses 10 points to pruning on both sides
