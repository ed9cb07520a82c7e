"""A real `nnUNetv2_tevia_prompts embed` killed with SIGKILL mid-way, then re-run: the cache must end complete."""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts
from nnunetv2_tevia.text.cache import load_active_cache

N_TEXTS = 200  # enough that the first files appear long before the run could finish on a 2-core CPU
WORDS = "left right upper middle lower lung bilateral unilateral infection area".split()


def _command():
    script = os.path.join(os.path.dirname(sys.executable), "nnUNetv2_tevia_prompts")
    if os.path.isfile(script):
        return [script]
    return [sys.executable, "-m", "nnunetv2_tevia.cli.prompts_cli"]


def _make_dataset(raw):
    folder = raw / "Dataset903_Kill"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "xray"}, "file_ending": ".png",
                                                     "labels": {"background": 0, "lesion": 1}, "numTraining": 3}))
    cases = {f"case_{i:04d}": f"report {i}: {WORDS[i % 10]} {WORDS[i // 10 % 10]} {WORDS[i // 100 % 10]} lung."
             for i in range(N_TEXTS)}
    for cid in list(cases)[:3]:
        (folder / "imagesTr" / f"{cid}_0000.png").touch()
    save_prompts(PromptFile(path=None, cases=cases, default="no finding.", paraphrase={"variants": 0}), folder / "tevia_prompts.json")
    return cases


def test_kill_9_mid_embed_then_rerun_completes(tmp_path, monkeypatch):
    raw, pre = tmp_path / "raw", tmp_path / "pre"
    pre.mkdir()
    cases = _make_dataset(raw)
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(pre))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    args = _command() + ["embed", "-d", "903", "--batch-size", "4", "--max-tokens", "8", "--no-progress"]
    pattern = str(pre / "Dataset903_Kill" / "tevia_text_cache" / "*" / "texts" / "*.npz")

    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while len(glob.glob(pattern)) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    n_before = len(glob.glob(pattern))
    assert 0 < n_before < N_TEXTS + 1  # really killed mid-way
    with pytest.raises(TextCacheError):  # nothing half-done is offered as the active cache
        load_active_cache(903)

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    computed, reused = map(int, re.search(r"(\d+) computed, (\d+) reused", rerun.stdout).groups())
    assert computed + reused == N_TEXTS + 1 and reused >= n_before - 1  # at most the file being written is lost

    cache = load_active_cache(903)
    assert cache.complete and sorted(cache.case_ids) == sorted(cases)
    for cid in cases:
        feats, mask = cache.features(cid)
        assert feats.shape == (8, 384) and mask.any() and np.isfinite(feats).all()
    cache.no_report_features()
    texts_dir = os.path.join(cache.folder, "texts")
    assert not [f for f in os.listdir(texts_dir) if not f.endswith(".npz")]
    assert not glob.glob(os.path.join(cache.folder, ".*.tmp"))

    # Files written before the kill hold the same features as a fresh computation.
    from nnunetv2_tevia.text.encoders import load_encoder

    first = "case_0000"
    expected = load_encoder("default", device="cpu").encode([cases[first]], 8).features[0]
    np.testing.assert_allclose(cache.features(first)[0].astype(np.float32), expected.astype(np.float32), atol=1e-3)
