"""Same predictions before and after a code change (issue 29): tiny TeViA models trained by one version of the
code, predicted by another, compared bit for bit.

    # 1. with the code BEFORE the change (here a worktree of it): data, tiny trainings, reference predictions
    cd /work/frozen && PYTHONPATH=/work/frozen /work/main/.venv/bin/python \\
        /work/main/benchmarks/same_predictions.py make -o /work/bench/same_predictions
    # 2. with the code AFTER the change (the repository's own, no PYTHONPATH): the same checkpoints predicted again
    cd /work/main && .venv/bin/python benchmarks/same_predictions.py check -o /work/bench/same_predictions
    # (run 2 with the make code too, PYTHONPATH=/work/frozen, to see that the harness itself is deterministic)

Whichever ``nnunetv2_tevia`` the interpreter imports is the code under test (its folder is printed); the commands
and workers this script starts import the same one (PYTHONPATH is set to its repository and the repository's
``tests/``, ``nnUNet_extTrainer`` to its ``nnunetv2_tevia/ext_trainer`` and ``tests/ext_trainer``, as
tests/conftest.py does, so the tests' tiny trainers are found).

``make`` builds two tiny synthetic demo datasets (nnunetv2_tevia.demo.generate_demo_dataset, as the tests do):
2D PNG, 6 training cases, with the "2d" preset word map ``"mirror": {"preset": "2d"}``, and 3D NIfTI 16^3, 6 training
cases, with the demo's 3D word map and nnU-Net's transpose forced to (2, 0, 1) (tests/test_mirror_text_3d.py). It
plans, preprocesses and embeds them with a tiny random BERT (tests/tiny_text_models.py) and trains
``nnUNetTrainerTeViA_mirrorText_tiny`` (tests/tevia_test_trainers.py: 2 epochs of 3 iterations) on fold 0 in 2d and
3d_fullres. The inputs to predict are the two test cases of each dataset plus one larger case (96^2 / 24^3, several
sliding-window tiles, so the tile boxes and the Gaussian blend are exercised). Prompt files: ``own`` (each case's
report), ``swapped`` (each case gets the next case's report), ``reworded`` (the demo's validation wording: same
targets, other words) and ``none`` (no cases; predicted with --allow-missing-text on the model's no-report text);
all carry the model's word map, so test-time mirroring flips the reports.

Scenarios, per model (2d, 3d), each writing probabilities (npz):

- ``cli_own``, ``cli_swapped``, ``cli_reworded``, ``cli_none``: ``nnUNetv2_tevia_predict`` with test-time mirroring
  (the default), ``--save_probabilities``, ``-npp 1 -nps 1`` (nnU-Net's predict_from_files with worker processes);
- ``api_sequential``: ``nnUNetTeViAPredictor.predict_from_files_sequential`` with the own reports;
- ``api_single_npy``: ``predict_single_npy_array(..., text=REPORT)`` on the large case, probabilities returned;
- ``final_validation``: ``nnUNetv2_train D CONFIG 0 -tr TRAINER --val --npz``: nnU-Net's final validation of
  training re-run from the checkpoint (the fold's validation/*.npz).

Every run (make's ``reference`` and each check) works on its own copies of nnUNet_preprocessed and nnUNet_results
(checkpoints symlinked, their sha256 checked before and after), so the trained models and the reference stay as
``make`` left them; a checkpoint written by the old code is loaded by the code under test. ``check`` reruns every
scenario into ``OUT/runs/NAME`` (``--name``, default ``check``) and compares every array of every npz (and the
exported segmentations) with the reference: same files, dtype, shape and ``np.array_equal``. It prints one row per
scenario and exits 1 if anything differs or fails. ``check --what-differs`` also prints, for the reference, how far
swapped / reworded / no reports are from the own ones (the text must matter, else identity proves little).

Determinism: nnU-Net's prediction runs the network on ``nnUNet_def_n_proc`` = 1 thread here; OMP_NUM_THREADS=1,
nnU-Net's commands set their own torch thread count from the CPU count, which is recorded by make and compared by
check (compare on the same machine). Temporary files go to OUT/tmp (removed at the end).

Timings (2026-12-07, the 2-core development CPU, ``-j 2``, shared with other sessions' tests and a niced benchmark,
load 8 to 11): make 14 min wall, 9 min CPU (planning and the two trainings 6 min, the reference run 8 min); check
9 to 11 min wall, 6 min CPU. Most of it is process start-up (torch, nnU-Net, the encoder, nnU-Net's worker
processes): each of the 14 scenarios is its own command; on an idle machine expect about half the wall time.
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
TRAINER = "nnUNetTrainerTeViA_mirrorText_tiny"
MODELS = {  # key -> dataset id, name, configuration, file ending, 3d
    "2d": dict(id=961, name="Dataset961_SamePred2D", config="2d", ending=".png", three_d=False),
    "3d": dict(id=962, name="Dataset962_SamePred3D", config="3d_fullres", ending=".nii.gz", three_d=True),
}
TRANSPOSE_3D = [2, 0, 1]
PROMPT_KINDS = ("own", "swapped", "reworded", "none")
SCENARIOS = tuple(f"cli_{k}" for k in PROMPT_KINDS) + ("api_sequential", "api_single_npy", "final_validation")
BIG_CASE = "big_000"


# ----------------------------------------------------------------------------------------------- the code under test
def code_root() -> Path:
    import nnunetv2_tevia

    return Path(nnunetv2_tevia.__file__).resolve().parent.parent


def code_description(root: Path) -> dict:
    def git(*args):
        p = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "nnunetv2_tevia")
    return {"root": str(root), "commit": git("rev-parse", "HEAD"), "package_changed_since_commit": bool(dirty)}


def base_env(out: Path, root: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NNUNETV2_TEVIA_ALLOW_NO_REPORT", "nnUNet_extTrainer", "PYTHONPATH", "nnUNet_n_proc_DA")}
    env.update(PYTHONPATH=os.pathsep.join([str(root), str(root / "tests")]),
               nnUNet_extTrainer=os.pathsep.join([str(root / "nnunetv2_tevia" / "ext_trainer"),
                                                  str(root / "tests" / "ext_trainer")]),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", nnUNet_compile="false", nnUNet_def_n_proc="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="agg", TMPDIR=str(out / "tmp"),
               PYTHONHASHSEED="0")
    return env


def script(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.isfile(beside) else (shutil.which(name) or name)


def run(cmd, env, log: Path, label: str = "", timeout: int = 1200) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.run([str(c) for c in cmd], env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=env.get("SAME_PRED_CWD"))
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {p.returncode} (log {log}):\n"
                           f"{log.read_text()[-3000:]}")
    print(f"    {label} {Path(str(cmd[0])).name} {time.monotonic() - t:.0f} s", flush=True)


def check_subprocess_code(env: dict, root: Path) -> None:
    p = subprocess.run([sys.executable, "-c", "import nnunetv2_tevia; print(nnunetv2_tevia.__file__)"], env=env,
                       capture_output=True, text=True, check=True)
    got = Path(p.stdout.strip()).resolve()
    if root not in got.parents:
        raise SystemExit(f"the commands started here would import {got}, not the code under test in {root}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_folder(results: Path, m: dict) -> Path:
    return results / m["name"] / f"{TRAINER}__nnUNetPlans__{m['config']}"


# ----------------------------------------------------------------------------------------------- make
def make(out: Path, jobs: int) -> None:
    root = code_root()
    print(f"code under test (make): {root / 'nnunetv2_tevia'}", flush=True)
    sys.path.insert(0, str(root / "tests"))
    from batchgenerators.utilities.file_and_folder_operations import load_json, save_json

    from nnunetv2_tevia.demo.generator import generate_demo_dataset, load_metadata
    from nnunetv2_tevia.demo.report_templates import demo_mirror_map
    from nnunetv2_tevia.demo.report_variants import reworded_report
    from nnunetv2_tevia.prompts.mirror_words import DEFAULT_2D_MAP
    from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, PromptFile, load_prompts, save_prompts
    from tiny_text_models import make_tiny_bert

    t0 = time.monotonic()
    work = out / "work"
    raw, pre, res = work / "nnUNet_raw", work / "nnUNet_preprocessed", work / "nnUNet_results"
    for p in (raw, pre, res):
        p.mkdir(parents=True, exist_ok=True)
    env = base_env(out, root)
    env.update(nnUNet_raw=str(raw), nnUNet_preprocessed=str(pre), nnUNet_results=str(res), SAME_PRED_CWD=str(root))
    check_subprocess_code(env, root)
    bert = make_tiny_bert(work / "bert", seed=0)
    manifest = {"made_by": code_description(root), "cpu_count": multiprocessing.cpu_count(), "trainer": TRAINER,
                "models": {}}

    def prepare(key: str) -> None:
        m = MODELS[key]
        t = time.monotonic()
        print(f"[{key}] data, planning, preprocessing, embedding", flush=True)
        size = 16 if m["three_d"] else 64
        folder = generate_demo_dataset(str(raw), m["id"], name=m["name"].split("_", 1)[1], num_train=6, num_test=2,
                                       three_d=m["three_d"], size=size)
        word_map = demo_mirror_map(True) if m["three_d"] else DEFAULT_2D_MAP
        pf = load_prompts(os.path.join(folder, PROMPTS_FILENAME))
        pf.mirror = word_map  # 2D: the "2d" preset, {"preset": "2d"}; 3D: the demo's map (there is no 3D preset)
        save_prompts(pf)
        # one larger case, predicted with several sliding-window tiles
        extra = generate_demo_dataset(str(work / "extra"), m["id"], name=f"Big{key}", num_train=1, num_test=1,
                                      three_d=m["three_d"], size=24 if m["three_d"] else 96, seed=1)
        inputs = out / "inputs" / key
        inputs.mkdir(parents=True)
        reports, reworded = {}, {}
        for src, meta in ((folder, load_metadata(folder)), (extra, load_metadata(extra))):
            for case in sorted(c for c, v in meta["cases"].items() if v["split"] == "test"):
                name = BIG_CASE if src == extra else case
                shutil.copy(os.path.join(src, "imagesTs", f"{case}_0000{m['ending']}"),
                            inputs / f"{name}_0000{m['ending']}")
                reports[name] = meta["cases"][case]["report"]
                reworded[name] = reworded_report(meta["cases"][case], "validation wording")
        cases = sorted(reports)
        swapped = {c: reports[cases[(i + 1) % len(cases)]] for i, c in enumerate(cases)}
        prompts = {}
        for kind, texts in (("own", reports), ("swapped", swapped), ("reworded", reworded), ("none", {})):
            path = out / "prompts" / key / f"{kind}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_prompts(PromptFile(path=str(path), cases=texts, classes=dict(pf.classes), mirror=word_map))
            prompts[kind] = str(path)
        assert all(swapped[c] != reports[c] and reworded[c] != reports[c] for c in cases)

        run([script("nnUNetv2_tevia_plan_and_preprocess"), "-d", m["id"], "-c", m["config"], "-np", "1", "-npfp",
             "1", "-e", f"hf:{bert}"], env, out / "logs" / key / "plan_and_preprocess.log", f"[{key}]")
        if m["three_d"]:  # isotropic cubes: nnU-Net plans the identity; force another order (tests/test_mirror_text_3d)
            plans_file = pre / m["name"] / "nnUNetPlans.json"
            plans = load_json(str(plans_file))
            plans["transpose_forward"] = TRANSPOSE_3D
            plans["transpose_backward"] = np.argsort(TRANSPOSE_3D).tolist()
            save_json(plans, str(plans_file))
            run([script("nnUNetv2_preprocess"), "-d", m["id"], "-c", m["config"], "-np", "1"], env,
                out / "logs" / key / "preprocess.log", f"[{key}]")
        print(f"[{key}] training {TRAINER} fold 0", flush=True)
        run([script("nnUNetv2_train"), m["id"], m["config"], "0", "-tr", TRAINER, "-device", "cpu"],
            dict(env, nnUNet_n_proc_DA="0"), out / "logs" / key / "train.log", f"[{key}]")
        ckpt = model_folder(res, m) / "fold_0" / "checkpoint_final.pth"
        manifest["models"][key] = dict(m, cases=cases, prompts=prompts, inputs=str(inputs),
                                       checkpoint=str(ckpt.relative_to(out)), checkpoint_sha256=sha256(ckpt),
                                       seconds_data_and_training=round(time.monotonic() - t))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # the 2d and the 3d model side by side
        list(pool.map(prepare, MODELS))  # list(): an exception in a lane is raised here
    manifest["models"] = {k: manifest["models"][k] for k in MODELS}
    with open(out / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)
    failures = record(out, "reference", manifest, jobs)
    shutil.rmtree(out / "tmp", ignore_errors=True)
    if failures:
        raise SystemExit(f"the reference run failed: {failures}")
    print(f"make done in {time.monotonic() - t0:.0f} s: {out}")
    what_differs(out, manifest)


# ----------------------------------------------------------------------------------------------- one run
def _results_copy(out: Path, target: Path, manifest: dict) -> Path:
    """A scenario's own nnUNet_results: the model folders' small files copied, the checkpoints symlinked."""
    shutil.copytree(out / "work" / "nnUNet_results", target, symlinks=True,
                    ignore=lambda d, names: [n for n in names if n.endswith((".pth", ".png")) or n == "validation"])
    for m in manifest["models"].values():
        (target / Path(m["checkpoint"]).relative_to("work/nnUNet_results")).symlink_to(out / m["checkpoint"])
    return target


def _scenario(out: Path, run_dir: Path, env: dict, manifest: dict, key: str, scenario: str) -> None:
    m = manifest["models"][key]
    target, log = run_dir / key / scenario, run_dir / "logs" / key / f"{scenario}.log"
    res = _results_copy(out, run_dir / "results" / f"{key}_{scenario}", manifest)
    env = dict(env, nnUNet_results=str(res))
    label = f"[{key}/{scenario}]"
    if scenario.startswith("cli_"):
        kind = scenario[len("cli_"):]
        run([script("nnUNetv2_tevia_predict"), "-i", m["inputs"], "-o", target, "-d", m["id"], "-c", m["config"],
             "-f", "0", "-tr", TRAINER, "-device", "cpu", "--prompts", m["prompts"][kind], "--save_probabilities",
             "-npp", "1", "-nps", "1", "--disable_progress_bar",
             *(["--allow-missing-text"] if kind == "none" else [])], env, log, label)
    elif scenario.startswith("api_"):
        run([sys.executable, os.path.abspath(__file__), "_api", "-o", out, "--model", key, "--scenario", scenario,
             "--target", target], env, log, label)
    else:
        run([script("nnUNetv2_train"), m["id"], m["config"], "0", "-tr", TRAINER, "-device", "cpu", "--val",
             "--npz"], dict(env, nnUNet_n_proc_DA="0"), log, label)
        shutil.copytree(model_folder(res, m) / "fold_0" / "validation", target)


def record(out: Path, name: str, manifest: dict, jobs: int) -> dict:
    """Every scenario into OUT/runs/NAME with the code this process imports, ``jobs`` at a time (each its own
    process with fixed thread counts, so running side by side changes no result); {scenario: error} of those that
    failed."""
    root = code_root()
    run_dir = out / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (out / "tmp").mkdir(parents=True, exist_ok=True)
    env = base_env(out, root)
    env["SAME_PRED_CWD"] = str(root)
    check_subprocess_code(env, root)
    # the run's own nnUNet_preprocessed (read by the final validation), each scenario its own nnUNet_results
    pre = run_dir / "nnUNet_preprocessed"
    shutil.copytree(out / "work" / "nnUNet_preprocessed", pre, symlinks=True)
    env.update(nnUNet_raw=str(out / "work" / "nnUNet_raw"), nnUNet_preprocessed=str(pre))
    failures, timings = {}, {}

    def one(item):
        key, scenario = item
        t = time.monotonic()
        try:
            _scenario(out, run_dir, env, manifest, key, scenario)
        except Exception as e:  # the code under test may be broken: say so and go on with the other scenarios
            failures[f"{key}/{scenario}"] = str(e)[-1500:]
            print(f"    FAILED {key}/{scenario}: {str(e).splitlines()[0]}", flush=True)
        timings[f"{key}/{scenario}"] = round(time.monotonic() - t, 1)

    items = [(key, scenario) for key in manifest["models"] for scenario in SCENARIOS]
    # the slow ones first, so that the pool ends together
    items.sort(key=lambda i: (i[1] != "final_validation", i[0] != "3d"))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, items))
    for m in manifest["models"].values():
        if sha256(out / m["checkpoint"]) != m["checkpoint_sha256"]:
            raise SystemExit(f"{out / m['checkpoint']} changed during the run: the make checkpoints are gone")
    with open(run_dir / "run.json", "w") as f:
        json.dump({"code": code_description(root), "cpu_count": multiprocessing.cpu_count(), "jobs": jobs,
                   "timings_s": dict(sorted(timings.items())), "failures": failures}, f, indent=1)
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return failures


def api_worker(out: Path, key: str, scenario: str, target: Path) -> None:
    """In its own process (the environment set before nnU-Net is imported): the predictor's Python API."""
    import torch

    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor
    from nnunetv2_tevia.prompts.prompt_file import load_prompts

    print(f"code under test (worker): {code_root() / 'nnunetv2_tevia'}", flush=True)
    torch.set_num_threads(1)
    m = json.loads((out / MANIFEST).read_text())["models"][key]
    prompts = load_prompts(m["prompts"]["own"])
    target.mkdir(parents=True)
    predictor = nnUNetTeViAPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                     perform_everything_on_device=True, device=torch.device("cpu"), allow_tqdm=False,
                                     prompts=prompts, text_cache_folder=str(target / ".tevia_text_cache"))
    predictor.initialize_from_trained_model_folder(
        str(model_folder(Path(os.environ["nnUNet_results"]), m)), (0,), checkpoint_name="checkpoint_final.pth")
    if scenario == "api_sequential":
        predictor.predict_from_files_sequential(m["inputs"], str(target), save_probabilities=True, overwrite=True)
    else:
        image_file = os.path.join(m["inputs"], f"{BIG_CASE}_0000{m['ending']}")
        image, props = predictor.plans_manager.image_reader_writer_class().read_images([image_file])
        seg, probs = predictor.predict_single_npy_array(image, props, None, None, True,
                                                        text=prompts.cases[BIG_CASE])
        np.savez_compressed(target / f"{BIG_CASE}.npz", probabilities=probs, segmentation=seg)


# ----------------------------------------------------------------------------------------------- compare
def _arrays(folder: Path) -> dict:
    """{relative path: {key: array}} of every npz (outside text caches) and exported segmentation in a folder."""
    found = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if p.name.endswith(".npz"):
            with np.load(p) as z:
                found[str(rel)] = {k: z[k] for k in z.files}
        elif p.name.endswith((".png", ".nii.gz")):
            import SimpleITK as sitk
            found[str(rel)] = {"segmentation": sitk.GetArrayFromImage(sitk.ReadImage(str(p)))}
    return found


def compare(reference: Path, other: Path) -> dict:
    """Files, problems, probability files compared and the largest difference between two scenario folders."""
    a, b = _arrays(reference), _arrays(other)
    problems, max_diff, prob_files, seg_files = [], 0.0, 0, 0
    for rel in sorted(set(a) | set(b)):
        if rel not in a or rel not in b:
            problems.append(f"{rel}: only in {'the reference' if rel in a else 'the new run'}")
            continue
        if set(a[rel]) != set(b[rel]):
            problems.append(f"{rel}: keys {sorted(a[rel])} != {sorted(b[rel])}")
        prob_files += rel.endswith(".npz")
        seg_files += not rel.endswith(".npz")
        for k in sorted(set(a[rel]) & set(b[rel])):
            x, y = a[rel][k], b[rel][k]
            if x.dtype != y.dtype or x.shape != y.shape:
                problems.append(f"{rel}[{k}]: {x.dtype}{x.shape} != {y.dtype}{y.shape}")
                continue
            if not np.array_equal(x, y):
                d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
                max_diff = max(max_diff, d)
                problems.append(f"{rel}[{k}]: max abs difference {d:.3g}")
    if not prob_files:
        problems.append("no probability file")
    return {"prob_files": prob_files, "seg_files": seg_files, "problems": problems, "max_diff": max_diff}


def check(out: Path, name: str, show_differences: bool, jobs: int) -> int:
    root = code_root()
    print(f"code under test (check): {root / 'nnunetv2_tevia'}", flush=True)
    manifest = json.loads((out / MANIFEST).read_text())
    made = manifest["made_by"]
    print(f"reference made by: {made['root']} at {made['commit']}"
          f"{' (package changed since)' if made['package_changed_since_commit'] else ''}")
    now = code_description(root)
    print(f"checked code:      {now['root']} at {now['commit']}"
          f"{' (package changed since)' if now['package_changed_since_commit'] else ''}")
    if manifest["cpu_count"] != multiprocessing.cpu_count():
        print(f"WARNING: make ran on {manifest['cpu_count']} CPUs, this machine has {multiprocessing.cpu_count()}: "
              f"nnU-Net's thread counts differ, so may the last bits")
    t0 = time.monotonic()
    failures = record(out, name, manifest, jobs)
    seconds = time.monotonic() - t0
    rows, bad = [], 0
    for key in manifest["models"]:
        for scenario in SCENARIOS:
            label = f"{key}/{scenario}"
            if label in failures:
                rows.append((label, "-", "ERROR", "-", failures[label].strip().splitlines()[-1][:90]))
                bad += 1
                continue
            c = compare(out / "runs" / "reference" / key / scenario, out / "runs" / name / key / scenario)
            ok = not c["problems"]
            bad += not ok
            rows.append((label, f"{c['prob_files']} npz + {c['seg_files']} seg", "yes" if ok else "NO",
                         f"{c['max_diff']:.3g}", "; ".join(c["problems"][:2])[:90]))
    widths = [max(len(r[i]) for r in rows + [("scenario", "files compared", "identical", "max abs diff", "")])
              for i in range(5)]
    print()
    for r in [("scenario", "files compared", "identical", "max abs diff", "")] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"\n{len(rows) - bad} of {len(rows)} scenarios identical; check took {seconds:.0f} s "
          f"(run folder {out / 'runs' / name})")
    if show_differences:
        what_differs(out, manifest)
    return 1 if bad else 0


def what_differs(out: Path, manifest: dict) -> None:
    """How far the reference's other reports are from its own: the text must change the probabilities."""
    print("\nreference: max abs difference of the probabilities from those with the own reports")
    for key in manifest["models"]:
        own = _arrays(out / "runs" / "reference" / key / "cli_own")
        for kind in PROMPT_KINDS[1:]:
            other = _arrays(out / "runs" / "reference" / key / f"cli_{kind}")
            diffs = [float(np.abs(own[f]["probabilities"] - other[f]["probabilities"]).max())
                     for f in own if f.endswith(".npz") and f in other]
            print(f"  {key} {kind:9s} " + " ".join(f"{d:.3g}" for d in diffs))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="data, tiny trainings and reference predictions with the code it runs on")
    m.add_argument("-o", required=True, help="output folder (new or empty)")
    m.add_argument("-j", type=int, default=2, help="commands run side by side. Default: 2")
    c = sub.add_parser("check", help="predict the make checkpoints again with the code it runs on and compare")
    c.add_argument("-o", required=True, help="the folder make wrote")
    c.add_argument("-j", type=int, default=2, help="commands run side by side. Default: 2")
    c.add_argument("--name", default="check", help="run folder OUT/runs/NAME (replaced). Default: check")
    c.add_argument("--what-differs", action="store_true",
                   help="also print how far swapped / reworded / no reports are from the own reports")
    w = sub.add_parser("_api")  # internal: one API scenario in a fresh process
    w.add_argument("-o", required=True)
    w.add_argument("--model", required=True)
    w.add_argument("--scenario", required=True)
    w.add_argument("--target", required=True)
    args = p.parse_args(argv)
    out = Path(args.o).resolve()
    if args.command == "make":
        out.mkdir(parents=True, exist_ok=True)
        if any(p.name != "tmp" for p in out.iterdir()):
            raise SystemExit(f"{out} exists and is not empty: make writes a fresh folder")
    if args.command in ("make", "check"):  # this process's temporary files too (torch, transformers)
        (out / "tmp").mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(out / "tmp")
    if args.command == "make":
        make(out, args.j)
        return 0
    if args.command == "check":
        return check(out, args.name, args.what_differs, args.j)
    api_worker(out, args.model, args.scenario, Path(args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
