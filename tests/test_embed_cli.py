"""The stats / embed subcommands and nnUNetv2_tevia_plan_and_preprocess, run as a user runs them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts
from tiny_text_models import make_tiny_bert

TEXTS = {"img_a": "unilateral pulmonary infection, one infected area, lower right lung.",
         "img_b": "bilateral pulmonary infection, two infected areas, lower left lung and lower right lung.",
         "img_c": "unilateral pulmonary infection, one infected area, lower right lung."}


def _script(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    return [path] if os.path.isfile(path) else None


def _make_png_dataset(raw, name="Dataset904_Pp"):
    from PIL import Image

    folder = raw / name
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for cid in TEXTS:
        img = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        seg = np.zeros((32, 32), np.uint8)
        seg[8:20, 8:20] = 1
        Image.fromarray(img).save(folder / "imagesTr" / f"{cid}_0000.png")
        Image.fromarray(seg).save(folder / "labelsTr" / f"{cid}.png")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "xray"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": len(TEXTS), "file_ending": ".png"}))
    return folder


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    pre.mkdir()
    res.mkdir()
    folder = _make_png_dataset(raw)
    for k, v in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "nnUNet_compile": "false"}
    return folder, pre, env


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("m") / "tiny-bert")


def test_stats_and_embed_commands(dataset, bert, capsys):
    from nnunetv2_tevia.cli.prompts_cli import prompts_entry
    from nnunetv2_tevia.text.cache import load_active_cache

    folder, pre, _ = dataset
    save_prompts(PromptFile(path=None, cases=dict(TEXTS), paraphrase={"variants": 0}), folder / "tevia_prompts.json")
    prompts_entry(["stats", "-d", "904", "-e", f"hf:{bert}", "--max-tokens", "16"])
    out = capsys.readouterr().out
    # img_a/img_c: 14 tokens, img_b: 18 tokens.
    assert "3 case(s), 3 with text, 2 distinct text(s), 1 duplicate(s)" in out
    assert "min 14, median 14, p95 17.6, max 18" in out
    assert "1 case(s) (1 distinct text(s)) would be truncated" in out

    prompts_entry(["embed", "-d", "904", "-e", f"hf:{bert}", "--max-tokens", "16", "--no-progress"])
    out = capsys.readouterr().out
    assert "3 case(s) as 3 distinct text(s)" in out and "3 computed, 0 reused" in out
    assert "1 case(s) / 1 text(s) longer than 16 tokens were truncated (longest 18)" in out
    assert load_active_cache(904).features("img_b")[1].all()


def test_embed_command_rejects_bad_prompts_in_one_line(dataset, bert):
    folder, pre, env = dataset
    save_prompts(PromptFile(path=None, cases={"img_a": TEXTS["img_a"]}, paraphrase={"variants": 0}), folder / "tevia_prompts.json")
    cmd = _script("nnUNetv2_tevia_prompts") or [sys.executable, "-m", "nnunetv2_tevia.cli.prompts_cli"]
    r = subprocess.run(cmd + ["embed", "-d", "904", "-e", f"hf:{bert}"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "training case 'img_b' has no text" in r.stderr
    assert not (pre / "Dataset904_Pp" / "tevia_text_cache").exists()


def test_plan_and_preprocess_checks_prompts_first_then_embeds(dataset, bert):
    folder, pre, env = dataset
    cmd = _script("nnUNetv2_tevia_plan_and_preprocess") or \
        [sys.executable, "-m", "nnunetv2_tevia.cli.plan_and_preprocess"]
    args = cmd + ["-d", "904", "-e", f"hf:{bert}", "--max-tokens", "16", "-c", "2d", "-np", "1", "-npfp", "1"]

    save_prompts(PromptFile(path=None, cases={"img_a": TEXTS["img_a"]}, paraphrase={"variants": 0}), folder / "tevia_prompts.json")
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "img_b" in r.stderr and "Traceback" not in r.stderr
    assert not (pre / "Dataset904_Pp" / "dataset_fingerprint.json").exists()  # stopped before nnU-Net ran

    save_prompts(PromptFile(path=None, cases=dict(TEXTS), paraphrase={"variants": 0}), folder / "tevia_prompts.json")
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (pre / "Dataset904_Pp" / "nnUNetPlans.json").is_file()  # -c/-np/-npfp reached nnU-Net
    assert (pre / "Dataset904_Pp" / "nnUNetPlans_2d").is_dir()
    assert not (pre / "Dataset904_Pp" / "nnUNetPlans_3d_fullres").exists()
    from nnunetv2_tevia.text.cache import load_active_cache

    cache = load_active_cache(904)
    assert cache.case_ids == sorted(TEXTS) and cache.max_tokens == 16 and cache.encoder_id == "hf:tiny-bert"


# ------------------------------------------------------------------------------------------- one writer per cache
def _embed_args(bert, prompts):
    return ["embed", "-d", "904", "-e", f"hf:{bert}", "--max-tokens", "16", "--no-progress", "--prompts", str(prompts)]


def _prompt_files(folder, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save_prompts(PromptFile(path=None, cases=dict(TEXTS), paraphrase={"variants": 0}), a)
    save_prompts(PromptFile(path=None, cases=dict(TEXTS, img_b="no finding."), paraphrase={"variants": 0}), b)
    return a, b


def _manifest(pre) -> dict:
    from nnunetv2_tevia.text.cache import load_active_cache

    return load_active_cache(904).manifest


def test_second_embed_refuses_while_the_first_writes(dataset, bert, tmp_path):
    """Two concurrent embeds of different prompt files: the second refuses, naming the first; the cache ends as the
    last command that reported success left it."""
    import signal
    import time

    from nnunetv2_tevia.text.cache.lock import LOCK_FILE, lock_holder

    folder, pre, env = dataset
    a, b = _prompt_files(folder, tmp_path)
    root = pre / "Dataset904_Pp" / "tevia_text_cache"
    cmd = _script("nnUNetv2_tevia_prompts") or [sys.executable, "-m", "nnunetv2_tevia.cli.prompts_cli"]
    first = subprocess.Popen(cmd + _embed_args(bert, a), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 120
        while first.poll() is None and time.monotonic() < deadline and lock_holder(str(root)) is None:
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)  # hold it inside its write, however fast the machine is
        holder = lock_holder(str(root))
        assert holder is not None and holder["pid"] == first.pid, f"{root / LOCK_FILE}: {holder}"
        second = subprocess.run(cmd + _embed_args(bert, b), env=env, capture_output=True, text=True, timeout=300)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    line = [x for x in second.stderr.splitlines() if x.startswith("error:")][0]
    assert str(root) in line and f"pid {first.pid}" in line and "embed" in line
    assert _manifest(pre)["prompt_file"] == str(a)
    # once the first has finished, the second runs, and its cache is the one that stays
    again = subprocess.run(cmd + _embed_args(bert, b), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _manifest(pre)["prompt_file"] == str(b)


def test_lock_of_a_dead_process_is_not_in_the_way(dataset, bert, tmp_path):
    from nnunetv2_tevia.cli.prompts_cli import prompts_entry
    from nnunetv2_tevia.text.cache.lock import LOCK_FILE

    folder, pre, env = dataset
    a, _ = _prompt_files(folder, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    root = pre / "Dataset904_Pp" / "tevia_text_cache"
    root.mkdir(parents=True)
    (root / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "command": "nnUNetv2_tevia_prompts embed"}))
    prompts_entry(_embed_args(bert, a))
    assert _manifest(pre)["prompt_file"] == str(a)


def test_every_repair_command_names_the_prompt_file(dataset, bert, tmp_path):
    """After an interrupted embed of --prompts FILE, the printed repair command must embed FILE again, not the
    dataset's default prompt file."""
    from nnunetv2_tevia.cli.prompts_cli import prompts_entry
    from nnunetv2_tevia.errors import TextCacheError
    from nnunetv2_tevia.text.cache import MANIFEST, load_active_cache

    folder, pre, env = dataset
    a, _ = _prompt_files(folder, tmp_path)
    prompts_entry(_embed_args(bert, a))
    path = os.path.join(load_active_cache(904).folder, MANIFEST)
    manifest = json.loads(open(path).read())
    manifest["complete"] = False  # as a kill mid-way leaves it
    with open(path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(TextCacheError, match="interrupted") as e:
        load_active_cache(904)
    assert f"--prompts {a}" in str(e.value)
