"""benchmarks/plain_loop_ablation.py at a tiny budget: it trains the real TeViANetwork per variant, scores every
wording row, resumes, and refuses to mix budgets in one results file."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import plain_loop_ablation as ablation  # noqa: E402


@pytest.mark.slow
def test_tiny_run_scores_every_row_resumes_and_keeps_budgets_apart(tmp_path, capsys):
    out = str(tmp_path / "abl")
    ablation.main(["-o", out, "--variants", "default", "plain", "--steps", "4", "--eval-every", "2"])
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["meta"]["steps"] == 4 and results["meta"]["commit"]
    curve = results["runs"]["default"]["0"]
    assert [c["step"] for c in curve] == [2, 4]
    assert set(ablation.EVAL_ROWS) <= set(curve[-1]) and all(0 <= curve[-1][r] <= 1 for r in ablation.EVAL_ROWS)
    assert set(results["runs"]["plain"]["0"][-1]) >= {"plain"}
    table = open(os.path.join(out, "results.md")).read()
    assert "| default | 0 |" in table and "| plain | 0 |" in table
    # a second call skips what is done
    capsys.readouterr()
    ablation.main(["-o", out, "--variants", "default", "--steps", "4", "--eval-every", "2"])
    assert "default seed 0 step" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="4 steps"):
        ablation.main(["-o", out, "--variants", "default", "--steps", "6"])
    # a run in another folder (another process) joins the first one's table
    other = str(tmp_path / "other")
    ablation.main(["-o", other, "--variants", "no_null_key", "--steps", "4", "--eval-every", "4"])
    ablation.main(["-o", out, "--variants", "default", "--steps", "4", "--merge", other])
    merged = json.load(open(os.path.join(out, "results.json")))["runs"]
    assert set(merged) == {"default", "plain", "no_null_key"} and merged["default"]["0"] == curve
    commits = json.load(open(os.path.join(out, "results.json")))["commits"]  # each run keeps the commit that made it
    assert commits["no_null_key"]["0"] == commits["default"]["0"] == results["meta"]["commit"]
    assert "| no_null_key | 0 |" in open(os.path.join(out, "results.md")).read()
    with pytest.raises(SystemExit, match="4 steps, not 6"):
        ablation.main(["-o", str(tmp_path / "third"), "--variants", "default", "--steps", "6", "--merge", other])


def test_every_variant_builds_and_runs_one_forward():
    import torch

    test = ablation.make_test_set(n=2)
    bank = ablation.TextBank()
    for name in ablation.VARIANTS:
        net, guidance = ablation.build(name)
        x = test["x"]
        out = net(x) if guidance is None else net(x, *bank.lookup(test["reports"]["training"]))
        assert out.shape == (2, 2, ablation.SIZE, ablation.SIZE), name
        assert torch.isfinite(out).all(), name
