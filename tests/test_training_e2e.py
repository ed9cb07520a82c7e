"""End to end with the real commands: plan and preprocess, train (2d, 3d_fullres, ResEnc), kill and resume,
fine-tune from a plain checkpoint, and predict with per-case text.

Tiny synthetic demo data and the ``_tiny`` trainers (2 epochs of 3 iterations); the preprocessed dataset and
the 2D model are session fixtures that every test shares. Slow (minutes in all on a 2-core CPU): deselect
with ``-m "not slow"``. ``TEVIA_E2E_WORKDIR=/some/folder`` keeps the workspace (and reuses finished
preprocessing and trainings in it) for inspection and quicker reruns.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunetv2_tevia.demo.generator import generate_demo_dataset
from nnunetv2_tevia.errors import TeViAError
from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts

pytestmark = pytest.mark.slow

DS_2D, DS_3D = 901, 902
NAME_2D, NAME_3D = "Dataset901_TeViADemo", "Dataset902_TeViADemo"
TINY = "nnUNetTrainerTeViA_tiny"
RESENC_PLANS = "nnUNetResEncUNetMPlans"
COMMAND_TIMEOUT = 900


# ----------------------------------------------------------------------------------------------- helpers
def _script(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.isfile(beside) else (shutil.which(name) or name)


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self.raw, self.pre, self.res = root / "raw", root / "pre", root / "res"
        for p in (self.raw, self.pre, self.res):
            p.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(nnUNet_raw=str(self.raw), nnUNet_preprocessed=str(self.pre), nnUNet_results=str(self.res),
                        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", nnUNet_compile="false",
                        # nnU-Net's default of 8 export workers costs minutes here
                        nnUNet_def_n_proc="1", OMP_NUM_THREADS="1", MPLBACKEND="agg")
        # augmentation in the training process (not for planning: its VRAM estimate calls set_num_threads(0))
        self.train_env = dict(self.env, nnUNet_n_proc_DA="0")

    def run(self, *args, check=True, extra_env=None, timeout=COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        p = subprocess.run([_script(args[0]), *map(str, args[1:])], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} exited with {p.returncode}\n--- stdout\n"
                                 f"{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}")
        return p

    def model_folder(self, dataset: str, trainer: str = TINY, plans: str = "nnUNetPlans", config: str = "2d") -> Path:
        return self.res / dataset / f"{trainer}__{plans}__{config}"

    def use_in_process(self, monkeypatch):
        for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            monkeypatch.setenv(k, self.env[k])


def _train(ws: Workspace, dataset: str, config: str, fold, trainer: str = TINY, plans: str = "nnUNetPlans",
           *extra) -> Path:
    """Train unless a reused workspace already holds the finished fold; returns the model folder."""
    folder = ws.model_folder(dataset, trainer, plans, config)
    if not (folder / f"fold_{fold}" / "checkpoint_final.pth").is_file():
        ws.run("nnUNetv2_train", dataset, config, fold, "-tr", trainer, "-p", plans, "-device", "cpu", *extra,
               extra_env=ws.train_env)
    return folder


def _load(path) -> dict:
    return torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)


def _stage_indices(weights: dict) -> list:
    return sorted({int(k.split(".")[1]) for k in weights if k.startswith("guidance.")})


def _assert_prototypes_active(weights: dict) -> None:
    stages = _stage_indices(weights)
    assert stages, "the checkpoint has no guided stages"
    for s in stages:
        proto = weights[f"guidance.{s}.prototype"]
        assert bool(weights[f"guidance.{s}.prototype_active"]), f"prototype of stage {s} is not active"
        assert torch.isfinite(proto).all(), f"prototype of stage {s} is not finite"
        assert proto.abs().sum() > 0, f"prototype of stage {s} is all zero"


def _training_logs(fold_folder: Path) -> list:
    return sorted(fold_folder.glob("training_log_*.txt"))


def _assert_tevia_training(folder: Path, dataset: str, monkeypatch, ws: Workspace, fold: int = 0) -> None:
    from nnunetv2_tevia.text.cache import load_active_cache

    fold_folder = folder / f"fold_{fold}"
    ckpt = _load(fold_folder / "checkpoint_final.pth")
    _assert_prototypes_active(ckpt["network_weights"])

    tevia = load_json(str(folder / "plans.json")).get("tevia")
    assert tevia is not None, "plans.json in the results folder has no 'tevia' section"
    ws.use_in_process(monkeypatch)
    assert tevia["encoder"] == load_active_cache(dataset).encoder_record()
    assert len(tevia["slots"]) == tevia["num_guided_stages"] == len(_stage_indices(ckpt["network_weights"]))
    assert ckpt["init_args"]["plans"]["tevia"] == tevia

    assert (fold_folder / "validation" / "summary.json").is_file()
    assert (fold_folder / "progress_tevia.png").is_file()
    log = "\n".join(p.read_text() for p in _training_logs(fold_folder))
    assert "alignment_loss" in log


def _epochs_started(log: str) -> list:
    return [int(n) for n in re.findall(r": Epoch (\d+) *$", log, flags=re.MULTILINE)]


def _all_checkpoints_readable(folder: Path, seen: dict) -> dict:
    """torch.load every .pth in the folder that changed since the last look; a half-written file fails here."""
    loaded = {}
    for path in folder.glob("*.pth"):
        try:
            st = path.stat()
        except FileNotFoundError:  # replaced or removed between glob and stat
            continue
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen.get(path.name) == stamp:
            continue
        try:
            loaded[path.name] = _load(path)
        except FileNotFoundError:
            continue
        except Exception as e:
            raise AssertionError(f"{path} could not be loaded while training ran: {e!r}")
        seen[path.name] = stamp
    return loaded


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Workspace:
    root = os.environ.get("TEVIA_E2E_WORKDIR")
    return Workspace(Path(root) if root else tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="session")
def data_2d(ws) -> str:
    """2D demo (10 training, 3 test cases), planned and preprocessed with nnUNetv2_tevia_plan_and_preprocess."""
    if not (ws.raw / NAME_2D).is_dir():
        generate_demo_dataset(str(ws.raw), DS_2D, num_train=10, num_test=3)
    if not (ws.pre / NAME_2D / "nnUNetPlans_2d").is_dir():
        ws.run("nnUNetv2_tevia_plan_and_preprocess", "-d", DS_2D, "-c", "2d", "-np", "1", "-npfp", "1")
    return NAME_2D


@pytest.fixture(scope="session")
def model_2d(ws, data_2d) -> Path:
    return _train(ws, data_2d, "2d", 0)


# ----------------------------------------------------------------------------------------------- training
def test_train_2d_writes_prototypes_plans_and_plots(ws, model_2d, monkeypatch):
    _assert_tevia_training(model_2d, NAME_2D, monkeypatch, ws)


def test_train_3d_fullres(ws, monkeypatch):
    if not (ws.raw / NAME_3D).is_dir():
        generate_demo_dataset(str(ws.raw), DS_3D, num_train=6, num_test=0, size=16, three_d=True)
    if not (ws.pre / NAME_3D / "nnUNetPlans_3d_fullres").is_dir():
        ws.run("nnUNetv2_tevia_plan_and_preprocess", "-d", DS_3D, "-c", "3d_fullres", "-np", "1", "-npfp", "1")
    folder = _train(ws, NAME_3D, "3d_fullres", 0)
    _assert_tevia_training(folder, NAME_3D, monkeypatch, ws)


def test_train_resenc_plans_2d(ws, data_2d, monkeypatch):
    if not (ws.pre / data_2d / f"{RESENC_PLANS}.json").is_file():
        ws.run("nnUNetv2_tevia_plan_and_preprocess", "-d", DS_2D, "-c", "2d", "-np", "1", "-npfp", "1",
               "-pl", "nnUNetPlannerResEncM")
    folder = _train(ws, data_2d, "2d", 0, plans=RESENC_PLANS)
    assert load_json(str(folder / "plans.json"))["configurations"]["2d"]["architecture"][
        "network_class_name"].endswith("ResidualEncoderUNet")
    _assert_tevia_training(folder, data_2d, monkeypatch, ws)


def test_kill_9_mid_epoch_then_continue(ws, data_2d):
    trainer = "nnUNetTrainerTeViA_tinySaveEveryEpoch"
    folder = ws.model_folder(data_2d, trainer)
    shutil.rmtree(folder, ignore_errors=True)
    fold_folder = folder / "fold_0"
    args = [_script("nnUNetv2_train"), data_2d, "2d", "0", "-tr", trainer, "-device", "cpu"]
    seen: dict = {}

    with open(ws.root / "killed_training.log", "w") as out:
        proc = subprocess.Popen(args, env=ws.train_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + COMMAND_TIMEOUT
            latest_epoch = None
            while latest_epoch is None:
                assert proc.poll() is None, f"training ended before checkpoint_latest.pth appeared:\n" \
                                            f"{(ws.root / 'killed_training.log').read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no checkpoint_latest.pth in time"
                loaded = _all_checkpoints_readable(fold_folder, seen) if fold_folder.is_dir() else {}
                if "checkpoint_latest.pth" in loaded and loaded["checkpoint_latest.pth"]["current_epoch"] >= 1:
                    latest_epoch = loaded["checkpoint_latest.pth"]["current_epoch"]
                time.sleep(0.2)
            # into the next epoch: its first log line is written before its first iteration
            while latest_epoch not in _epochs_started("".join(p.read_text() for p in _training_logs(fold_folder))):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (fold_folder / "checkpoint_final.pth").exists()
    resume_from = _all_checkpoints_readable(fold_folder, {})["checkpoint_latest.pth"]["current_epoch"]
    killed_logs = set(_training_logs(fold_folder))
    # what a kill -9 in the middle of a checkpoint write leaves: the resumed run must clean it up
    orphan = fold_folder / "checkpoint_latest.pth.tmp-99999999"
    orphan.write_bytes(b"half a checkpoint")
    time.sleep(1.1)  # the resumed run's log file name has a one-second timestamp

    with open(ws.root / "resumed_training.log", "w") as out:
        proc = subprocess.Popen(args + ["--c"], env=ws.train_env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            _all_checkpoints_readable(fold_folder, seen)
            time.sleep(0.2)
    assert proc.returncode == 0, (ws.root / "resumed_training.log").read_text()[-4000:]

    final = _load(fold_folder / "checkpoint_final.pth")
    assert final["current_epoch"] == 4
    assert not list(fold_folder.glob("*.tmp-*")), list(fold_folder.glob("*.tmp-*"))
    _assert_prototypes_active(final["network_weights"])
    resumed_log = "".join(p.read_text() for p in set(_training_logs(fold_folder)) - killed_logs)
    assert _epochs_started(resumed_log) == list(range(resume_from, 4))
    # restored buffers: an inactive prototype would be re-accumulated and announced again
    assert "guided stage activated" not in resumed_log
    assert "alignment_loss" in resumed_log


# ----------------------------------------------------------------------------------------------- fine-tuning
def test_finetune_from_plain_checkpoint(ws, data_2d, monkeypatch):
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    from nnunetv2_tevia.training.pretrained import build_tevia_network, expand_checkpoint

    plain_folder = _train(ws, data_2d, "2d", 0, trainer="nnUNetTrainer_tevia_tiny")
    plain_ckpt = plain_folder / "fold_0" / "checkpoint_final.pth"
    expanded = ws.root / "expanded.pth"

    p = ws.run("nnUNetv2_tevia_expand_checkpoint", "-i", plain_ckpt, "-o", expanded, "-d", DS_2D, "-c", "2d",
               "-tr", TINY)
    command = f"nnUNetv2_train {data_2d} 2d FOLD -tr {TINY} -p nnUNetPlans -pretrained_weights {expanded}"
    assert command in p.stdout

    # what nnUNetv2_train does before its first step: nnU-Net's loader on the trainer's fresh network
    ws.use_in_process(monkeypatch)
    plain = _load(plain_ckpt)["network_weights"]
    network, _ = build_tevia_network(DS_2D, "2d", trainer_name=TINY)
    load_pretrained_weights(network, str(expanded))
    state = network.state_dict()
    transferred = [k for k in plain if ".seg_layers." not in k]
    assert transferred and all(torch.equal(state[k], plain[k]) for k in transferred)
    assert not any(bool(v) for k, v in state.items() if k.endswith("prototype_active"))

    # a checkpoint of other plans is refused, naming the weight
    broken = dict(plain)
    key = next(k for k in transferred if k.endswith(".weight") and plain[k].ndim == 4)
    broken[key] = torch.zeros(plain[key].shape[0] + 1, *plain[key].shape[1:])
    torch.save({"network_weights": broken}, ws.root / "other_plans.pth")
    with pytest.raises(TeViAError, match=key.replace(".", r"\.")):
        expand_checkpoint(str(ws.root / "other_plans.pth"), str(ws.root / "never.pth"), DS_2D, "2d",
                          trainer_name=TINY)
    assert not (ws.root / "never.pth").exists()

    folder = ws.model_folder(data_2d)
    shutil.rmtree(folder / "fold_1", ignore_errors=True)
    p = ws.run("nnUNetv2_train", data_2d, "2d", 1, "-tr", TINY, "-device", "cpu", "-pretrained_weights", expanded,
               extra_env=ws.train_env)
    assert f"Loading pretrained weights from file  {expanded}" in p.stdout
    _assert_prototypes_active(_load(folder / "fold_1" / "checkpoint_final.pth")["network_weights"])


# ----------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_restores_prototypes(ws, model_2d, monkeypatch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunetv2_tevia.model.tevia_network import unwrap

    ws.use_in_process(monkeypatch)
    monkeypatch.setenv("nnUNet_results", str(tmp_path))  # the fresh trainer's log goes here, not into the model
    trainer = get_trainer_from_args(str(DS_2D), "2d", 0, TINY, device=torch.device("cpu"))
    saved = _load(model_2d / "fold_0" / "checkpoint_final.pth")
    trainer.load_checkpoint(str(model_2d / "fold_0" / "checkpoint_final.pth"))
    state = unwrap(trainer.network).state_dict()
    proto_keys = [k for k in saved["network_weights"] if ".prototype" in k]
    assert len(proto_keys) == 5 * len(_stage_indices(saved["network_weights"]))
    for k in proto_keys:
        assert torch.equal(state[k], saved["network_weights"][k]), k
    assert trainer.current_epoch == saved["current_epoch"]

    # the optimizer groups come back as they were saved: nnU-Net's SGD for the U-Net, AdamW for the text pathway
    opt_state = saved["optimizer_state"]
    assert opt_state["types"] == ["SGD", "AdamW"]
    groups = trainer.optimizer.param_groups
    saved_groups = [g for o in opt_state["optimizer_group"] for g in o["param_groups"]]
    assert [g["initial_lr"] for g in groups] == [g["initial_lr"] for g in saved_groups] == [0.01, 3e-4, 3e-4]
    assert [g["lr"] for g in groups] == [g["lr"] for g in saved_groups]
    assert [g["weight_decay"] for g in groups[1:]] == [1e-2, 0.0]  # no decay on gates, norms, biases, null keys
    saved_moments = opt_state["optimizer_group"][1]["state"]
    restored = trainer.optimizer.optimizers[1].state_dict()["state"]
    assert saved_moments and all(torch.equal(restored[i]["exp_avg"], m["exp_avg"]) for i, m in saved_moments.items())
    # the poly schedule scales each group from its own initial lr (nnU-Net's writes one lr into every group)
    trainer.lr_scheduler.step(1)
    factor = (1 - 1 / trainer.num_epochs) ** 0.9
    assert [g["lr"] for g in groups] == pytest.approx([0.01 * factor, 3e-4 * factor, 3e-4 * factor])


def test_training_batches_carry_each_patchs_place_in_the_image(ws, data_2d, monkeypatch, tmp_path):
    """nnU-Net's own loaders, built by the TeViA trainer, add batch['patch_box']. The demo's 64 x 64 patch is as large
    as its image, so each box spans exactly one image (hi - lo = 1); where nnU-Net's foreground oversampling centres
    a patch on a lesion, the image sits off-centre in the patch and the box says by how much."""
    from nnunetv2.run.run_training import get_trainer_from_args

    ws.use_in_process(monkeypatch)
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = get_trainer_from_args(str(DS_2D), "2d", 0, TINY, device=torch.device("cpu"))
    trainer.initialize()
    train, val = trainer.get_dataloaders()
    for batch in (next(train), next(val)):
        boxes = batch["patch_box"]
        assert boxes.shape == (batch["data"].shape[0], 2, 2)
        torch.testing.assert_close(boxes[..., 1] - boxes[..., 0], torch.ones(boxes.shape[:2]))
        assert (boxes[..., 0].abs() <= 0.5).all()
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

    assert trainer_module.nnUNetDataLoader is nnUNetDataLoader  # the swap lasted only for the call


def test_reference_variant_trains_and_predicts(ws, data_2d, monkeypatch, tmp_path):
    trainer = "nnUNetTrainerTeViA_reference_tiny"
    folder = _train(ws, data_2d, "2d", 0, trainer=trainer)
    _assert_tevia_training(folder, data_2d, monkeypatch, ws)
    tevia = load_json(str(folder / "plans.json"))["tevia"]
    assert tevia["design"] == "reference" and tevia["slots"] == [24, 12, 9][:tevia["num_guided_stages"]]
    ckpt = _load(folder / "fold_0" / "checkpoint_final.pth")
    assert "guidance.0.self_attention.q.weight" in ckpt["network_weights"]
    assert ckpt["optimizer_state"]["types"] == ["SGD"]  # everything in nnU-Net's SGD, as the reference
    ws.run("nnUNetv2_tevia_predict", "-i", ws.raw / data_2d / "imagesTs", "-o", tmp_path / "pred", "-d", DS_2D,
           "-c", "2d", "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "0", "-nps", "0",
           "--disable_progress_bar")
    assert len(list((tmp_path / "pred").glob("*.png"))) == 3


# ----------------------------------------------------------------------------------------------- prediction
def _test_case_files(ws: Workspace, dataset: str) -> dict:
    files = sorted(glob.glob(str(ws.raw / dataset / "imagesTs" / "*_0000.png")))
    return {os.path.basename(f)[:-len("_0000.png")]: f for f in files}


def _probabilities(folder: Path, case_id: str) -> np.ndarray:
    return np.load(folder / f"{case_id}.npz")["probabilities"]


def test_two_folds_keep_each_cases_text(ws, model_2d, monkeypatch, tmp_path):
    """Folds are reloaded per case; the case's text must survive that and be the right one for each case."""
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    ws.use_in_process(monkeypatch)
    model = tmp_path / "model"
    model.mkdir()
    for f in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        shutil.copy(model_2d / f, model / f)
    ckpt = torch.load(str(model_2d / "fold_0" / "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    for fold, scale in ((0, 30.0), (1, 60.0)):
        w = ckpt["network_weights"]
        for s in _stage_indices(w):
            w[f"guidance.{s}.gate"] = torch.tensor(scale)  # make the text dominate the guided stages
        (model / f"fold_{fold}").mkdir()
        torch.save(ckpt, model / f"fold_{fold}" / "checkpoint_final.pth")

    reports = load_prompts(str(ws.raw / NAME_2D / "tevia_prompts.json")).cases
    cases = _test_case_files(ws, NAME_2D)
    a, b = [k for k in cases if k.startswith("test_")][:2]
    assert reports[a] != reports[b]

    def predictor(texts: dict) -> nnUNetTeViAPredictor:
        pr = nnUNetTeViAPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                  perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False,
                                  prompts=PromptFile(path=None, cases=texts), text_cache_folder=str(tmp_path / "tc"))
        pr.initialize_from_trained_model_folder(str(model), use_folds=(0, 1))
        return pr

    own = predictor({a: reports[a], b: reports[b]})
    own.predict_from_files([[cases[a]], [cases[b]]], str(tmp_path / "both"), save_probabilities=True,
                           num_processes_preprocessing=1, num_processes_segmentation_export=1)
    for k in (a, b):
        # a predictor that knows only this case's text cannot give it another's
        (tmp_path / f"alone_{k}").mkdir()
        predictor({k: reports[k]}).predict_from_files_sequential([[cases[k]]], str(tmp_path / f"alone_{k}"),
                                                                save_probabilities=True)
        np.testing.assert_allclose(_probabilities(tmp_path / "both", k), _probabilities(tmp_path / f"alone_{k}", k),
                                   atol=1e-5, err_msg=f"{k} predicted together differs from {k} alone")

    swapped = predictor({a: reports[b], b: reports[a]})
    swapped.predict_from_files([[cases[a]], [cases[b]]], str(tmp_path / "swapped"), save_probabilities=True,
                               num_processes_preprocessing=1, num_processes_segmentation_export=1)
    for k in (a, b):
        diff = np.abs(_probabilities(tmp_path / "both", k) - _probabilities(tmp_path / "swapped", k)).max()
        assert diff > 1e-2, f"swapping the reports changed {k}'s probabilities by only {diff}"


def test_stock_nnunet_predict_refuses_unless_allowed(ws, model_2d, tmp_path):
    args = ["nnUNetv2_predict", "-i", ws.raw / NAME_2D / "imagesTs", "-o", tmp_path / "stock", "-d", DS_2D,
            "-c", "2d", "-f", "0", "-tr", TINY, "-device", "cpu", "-npp", "0", "-nps", "0",
            "--disable_progress_bar"]
    p = ws.run(*args, check=False)
    assert p.returncode != 0
    assert "nnUNetv2_tevia_predict" in p.stdout + p.stderr
    assert not list((tmp_path / "stock").glob("*.png"))

    ws.run(*args, extra_env={"NNUNETV2_TEVIA_ALLOW_NO_REPORT": "1"})
    assert len(list((tmp_path / "stock").glob("*.png"))) == 3


def test_tevia_predict_missing_text_and_sequential(ws, model_2d, tmp_path):
    reports = load_prompts(str(ws.raw / NAME_2D / "tevia_prompts.json")).cases
    cases = sorted(_test_case_files(ws, NAME_2D))
    without = cases[-1]
    prompts = tmp_path / "some_reports.json"  # no "default" and no class descriptions: no fallback text
    save_prompts(PromptFile(path=None, cases={k: reports[k] for k in cases[:-1]}), str(prompts))
    args = ["nnUNetv2_tevia_predict", "-i", ws.raw / NAME_2D / "imagesTs", "-o", tmp_path / "pred", "-d", DS_2D,
            "-c", "2d", "-f", "0", "-tr", TINY, "-device", "cpu", "--prompts", prompts, "--disable_progress_bar"]

    # the default trainer's models serve cases without a report (text dropout): predicted on the no-report text, and
    # the command says so, naming the case (a model that never saw it refuses: test_text_dropout.py)
    p = ws.run(*args, "-npp", "1", "-nps", "1", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"1 of {len(cases)} case(s) have no report and are predicted on the model's no-report text" in p.stdout
    assert without in p.stdout and "Traceback" not in p.stderr
    shutil.rmtree(tmp_path / "pred")

    ws.run(*args, "-npp", "0", "-nps", "0", "--allow-missing-text")
    assert sorted(f.name for f in (tmp_path / "pred").glob("*.png")) == [f"{k}.png" for k in cases]
    from nnunetv2_tevia.text.cache import TextCache

    manifests = list((tmp_path / "pred" / ".tevia_text_cache").glob("*/manifest.json"))
    assert len(manifests) == 1
    cache = TextCache.open(str(manifests[0].parent))
    assert all(cache.has_case(k) for k in cases[:-1])
