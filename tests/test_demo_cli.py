"""The README's main job, ``nnUNetv2_tevia_demo``, end to end at a tiny budget: every step runs, the summary
has the numbers the docs promise, and a second call resumes instead of redoing the work."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest



def _demo_command() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "nnUNetv2_tevia_demo")
    return beside if os.path.isfile(beside) else shutil.which("nnUNetv2_tevia_demo")


def unactivated_env() -> dict:
    """os.environ as CI has it: this virtual environment's scripts folder is not on PATH (not activated)."""
    from nnunetv2_tevia.cli.tool_path import scripts_dir
    here = os.path.abspath(scripts_dir())
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != here]
    return dict(os.environ, PATH=os.pathsep.join(path))


@pytest.mark.parametrize("activated", [False, True])
def test_tool_env_puts_this_environments_scripts_first(activated):
    from nnunetv2_tevia.cli.tool_path import scripts_dir, tool_env
    base = dict(os.environ) if activated else unactivated_env()
    env = tool_env(base, nnUNet_raw="/x")
    parts = env["PATH"].split(os.pathsep)
    assert parts[0] == scripts_dir() and parts.count(scripts_dir()) == 1 and env["nnUNet_raw"] == "/x"
    assert shutil.which("nnUNetv2_train", path=env["PATH"]).startswith(scripts_dir())


# the budget is in the trainer's name: 1 epoch x 2 iterations
TEVIA, PLAIN = "nnUNetTrainerTeViA_demoBudget1x2", "nnUNetTrainer_demoBudget1x2"
TINY = ["--num-train", "10", "--num-test", "2", "--epochs", "1", "--iterations", "2", "-device", "cpu"]
# The demo as a subprocess, with a stand-in for report_variants.write_reworded_variants (the held-out wordings):
# one extra prompt file, "stub wording", whose rows the demo must predict, print and record.
STUB_RUNNER = """
import sys
from nnunetv2_tevia.demo import report_variants
from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts

def write_reworded_variants(folder):
    pf = load_prompts(folder + '/tevia_prompts.json')
    path = folder + '/tevia_prompts_stub.json'
    save_prompts(PromptFile(path=path, cases={k: 'Findings: ' + v for k, v in pf.cases.items() if k.startswith('test_')},
                            classes=pf.classes, mirror=pf.mirror))
    return {'stub wording': path}

report_variants.write_reworded_variants = write_reworded_variants
from nnunetv2_tevia.cli.demo import demo_entry
sys.argv[0] = 'nnUNetv2_tevia_demo'
sys.exit(demo_entry())
"""


def _demo_env() -> dict:
    env = {k: v for k, v in unactivated_env().items() if not k.startswith("nnUNet_")}
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="agg", OMP_NUM_THREADS="1")
    return env


def _demo_cmd(workdir, *extra, stub=True) -> list:
    head = [sys.executable, "-c", STUB_RUNNER] if stub else [_demo_command()]
    return head + ["-o", str(workdir), *TINY, *extra]


def _run_demo(workdir, *extra, stub=True) -> subprocess.CompletedProcess:
    p = subprocess.run(_demo_cmd(workdir, *extra, stub=stub), env=_demo_env(), capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _table(summary: dict) -> dict:
    """The Dice table of a demo summary: row -> (mean, every case's Dice)."""
    return {r["row"]: (r["dice"], r["per_case"]) for r in summary["rows"]}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo at the smallest budget the CLI allows, as CI runs it (not activated)."""
    work = tmp_path_factory.mktemp("demo") / "demo"
    first = _run_demo(work)
    return work, first, json.load(open(work / "demo_summary.json"))


@pytest.mark.slow
def test_demo_runs_every_step_and_prints_every_row(demo_run):
    work, first, summary = demo_run
    assert first.stdout.strip().splitlines()[-1] == str(work / "demo_summary.json")
    tevia = summary[TEVIA]
    for key in ("dice", "dice_with_swapped_reports_vs_swapped_truth", "dice_with_swapped_reports_vs_original_truth",
                "dice_without_report"):
        assert 0.0 <= tevia[key] <= 1.0, key
    assert 0.0 <= summary[PLAIN]["dice"] <= 1.0
    assert summary["budget"]["epochs"] == 1 and summary["budget"]["iterations_per_epoch"] == 2
    assert summary["budget"]["num_train"] == 10 and summary["budget"]["batch_size"] > 0
    for folder in ("tevia", "nnunet", "tevia_swapped"):
        assert len(list((work / "overlays" / folder).glob("*.png"))) == 2
    assert "reports swapped to the distractors" in first.stdout
    # the no-report row and one row per extra prompt file of the dataset folder, printed and recorded
    rows = {r["row"]: r for r in summary["rows"]}
    for name in (f"{TEVIA} (no report)", f"{TEVIA} (stub wording)"):
        assert name in rows and name in first.stdout, name
    assert tevia["dice_with_reworded_reports"]["stub wording"] == rows[f"{TEVIA} (stub wording)"]["dice"]
    assert rows[f"{TEVIA} (stub wording)"]["prediction_made_by"]["arguments"]["prompts"].endswith(
        "tevia_prompts_stub.json")
    # every row names its model folder and the arguments that trained it; the dataset's record its own
    for name, row in rows.items():
        assert row["n"] == 2 and 0.0 <= row["dice"] <= 1.0 and os.path.isdir(row["model_folder"]), name
        assert row["model_arguments"]["epochs"] == 1 and row["model_arguments"]["iterations"] == 2, name
    made_by = summary["made_by"]
    assert made_by["dataset"]["arguments"]["seed"] == 0 and made_by["dataset"]["arguments"]["num_train"] == 10
    assert made_by["dataset"]["code"] and set(made_by["models"]) == {TEVIA, PLAIN}


@pytest.mark.slow
def test_second_call_resumes_instead_of_redoing(demo_run):
    work, first, summary = demo_run
    second = _run_demo(work, stub=False)  # the console script itself, not activated
    for step in ("dataset", "preprocessed data and text cache exist", f"{TEVIA} is trained", f"{PLAIN} is trained"):
        assert step in second.stdout, step
    assert "$ nnUNetv2_train" not in second.stdout
    for folder in ("tevia", "nnunet", "tevia_swapped", "tevia_no_report"):
        assert f"-o {work / 'predictions' / folder} " not in second.stdout, folder


def _newest_file(folder) -> str:
    files = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png")]
    return max(files, key=os.path.getmtime)


@pytest.mark.slow
def test_killed_during_prediction_resumes_to_the_same_table(demo_run):
    """kill -9 of the demo's process group while nnU-Net writes the TeViA predictions; the file it was writing is
    left half written (what a kill in the middle of the write leaves). The rerun must not score it, and its table
    equals the uninterrupted run's."""
    work, first, summary = demo_run
    folder = work / "predictions" / "tevia"
    shutil.rmtree(folder)
    log = open(work.parent / "killed.log", "w")
    proc = subprocess.Popen(_demo_cmd(work), env=_demo_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        if folder.is_dir() and len(list(folder.glob("test_*.png"))) >= 2:  # the last case's file has appeared
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait() == -signal.SIGKILL, open(work.parent / "killed.log").read()[-3000:]
    record = folder / "made_by.json"
    if not (record.is_file() and json.load(open(record)).get("complete")):
        newest = _newest_file(folder)
        data = open(newest, "rb").read()
        with open(newest, "wb") as f:
            f.write(data[: len(data) // 2])
    again = _run_demo(work)
    assert "$ nnUNetv2_train" not in again.stdout
    resumed = json.load(open(work / "demo_summary.json"))
    assert _table(resumed) == _table(summary)


@pytest.mark.slow
def test_rerun_with_another_seed_does_not_reuse(demo_run):
    work, first, summary = demo_run
    other = _run_demo(work, "--seed", "1")
    assert "reusing" not in other.stdout, other.stdout
    assert other.stdout.count("$ nnUNetv2_train") == 2
    new = json.load(open(work / "demo_summary.json"))
    assert new["made_by"]["dataset"]["arguments"]["seed"] == 1 and new["budget"]["seed"] == 1
    for trainer in (TEVIA, PLAIN):
        assert new["made_by"]["models"][trainer]["id"] != summary["made_by"]["models"][trainer]["id"]
    for row in new["rows"]:  # every number comes from the model retrained on the new data
        trainer = TEVIA if row["row"].startswith(TEVIA) else PLAIN
        assert row["prediction_made_by"]["inputs"]["model"] == new["made_by"]["models"][trainer]["id"], row["row"]


def test_the_demo_registers_its_budget_trainers_for_its_commands_alone(tmp_path, monkeypatch):
    """The demo's trainers are found by the nnU-Net commands the demo runs (and by a command of your own after
    nnUNetv2_tevia_env --demo), under a name that carries the budget; not by a plain nnUNetv2_train -tr."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_tevia.cli.demo import Demo
    from nnunetv2_tevia.demo import trainers
    from nnunetv2_tevia.demo.budget import SHIM_FOLDER, DemoBudget
    from nnunetv2_tevia.registration import shim_folder

    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # Demo sets them for its steps
        monkeypatch.setenv(k, str(tmp_path / k))
    monkeypatch.setenv("nnUNet_extTrainer", shim_folder())
    default = Demo(str(tmp_path / "demo"), False, 5, 1, 0, "cpu", 990, None, None)
    assert (default.tevia, default.plain) == ("nnUNetTrainerTeViA_demoBudget", "nnUNetTrainer_demoBudget")
    short = Demo(str(tmp_path / "demo"), False, 5, 1, 0, "cpu", 990, 1, 2, location_safe=True)
    assert (short.tevia, short.plain) == ("nnUNetTrainerTeViA_locationSafe_demoBudget1x2", PLAIN)
    assert short.model_folder(short.plain) != default.model_folder(default.plain)  # never one folder for two budgets
    assert short.env["nnUNet_extTrainer"].split(os.pathsep) == [shim_folder(), SHIM_FOLDER]
    with pytest.raises(RuntimeError, match="Could not find"):
        recursive_find_trainer_class_by_name(TEVIA)
    monkeypatch.setenv("nnUNet_extTrainer", short.env["nnUNet_extTrainer"])
    for name, budget in ((TEVIA, DemoBudget("nnUNetTrainerTeViA", 1, 2)),
                         ("nnUNetTrainer_demoBudget", DemoBudget("nnUNetTrainer")),
                         ("nnUNetTrainerTeViA_noText_demoBudget_seed1",
                          DemoBudget("nnUNetTrainerTeViA_noText", seed=1))):
        cls = recursive_find_trainer_class_by_name(name)
        assert cls is getattr(trainers, name) and cls.__name__ == name == budget.trainer
        assert cls.demo_budget == budget and cls.__mro__[1] is trainers.DemoBudgetMixin
    # the default length has one name; fullDA has no demo budget; the benchmarks' budgets are not the demo's
    for name in ("nnUNetTrainerTeViA_demoBudget20x25", "nnUNetTrainerTeViA_demoBudget_seed",
                 "nnUNetTrainerTeViA_fullDA_demoBudget", "nnUNetTrainerTeViA_cpuBudget"):
        assert not hasattr(trainers, name), name
    out = subprocess.run([os.path.join(os.path.dirname(_demo_command()), "nnUNetv2_tevia_env"), "--demo"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith(f'{os.pathsep}}}{SHIM_FOLDER}"') and out.startswith("export nnUNet_extTrainer=")


def test_a_failed_step_raises_the_projects_error(tmp_path, monkeypatch):
    """Library code raises TeViAError; only the entry point turns it into an exit status."""
    from nnunetv2_tevia.cli.demo import Demo
    from nnunetv2_tevia.errors import TeViAError

    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # Demo sets them for its steps
        monkeypatch.setenv(k, str(tmp_path / k))
    demo = Demo(str(tmp_path / "demo"), False, 5, 1, 0, "cpu", 990, None, None)
    with pytest.raises(TeViAError, match="failing") as caught:
        demo.run("failing", [sys.executable, "-c", "raise SystemExit(3)"])
    assert not isinstance(caught.value, SystemExit)


def _exits_outside_entry_points(path) -> list:
    """``raise SystemExit`` / ``sys.exit(...)`` outside a ``*_entry`` function, ``main`` or the ``__main__`` guard."""
    import ast

    found = []

    def visit(node, allowed):
        for child in ast.iter_child_nodes(node):
            inside = allowed or (isinstance(child, ast.FunctionDef) and (child.name.endswith("_entry")
                                                                         or child.name == "main")) \
                or (isinstance(child, ast.If) and "__main__" in ast.unparse(child.test))
            exits = (isinstance(child, ast.Raise) and child.exc is not None
                     and "SystemExit" in ast.unparse(child.exc).split("(")[0]) or \
                (isinstance(child, ast.Call) and ast.unparse(child.func) in ("sys.exit", "exit", "quit", "os._exit"))
            if exits and not inside:
                found.append(f"{path.name}:{child.lineno}")
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def test_demo_and_benchmark_library_code_never_exits():
    """Only entry points turn the project's errors into an exit status; the steps and helpers raise them."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    files = [repo / "nnunetv2_tevia" / "cli" / "demo.py", *sorted((repo / "nnunetv2_tevia" / "demo").glob("*.py")),
             repo / "benchmarks" / "run_benchmark.py", *sorted((repo / "benchmarks").glob("bench_*.py"))]
    assert [hit for f in files for hit in _exits_outside_entry_points(f)] == []
