"""The package's layering, checked on the source: the library layers never import the command or training layers,
the prompt tools run without torch, the demo's modules import each other in one direction, and the package's trainer
namespace holds no budget wrapper (those belong to the demo and the benchmarks, registered by them alone)."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunetv2_tevia"
LIBRARY_LAYERS = ("inference", "model", "text", "prompts")


def _imported_modules(path: Path) -> set:
    """Every module a file imports, at top level or inside functions (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LIBRARY_LAYERS)
def test_library_layers_import_neither_commands_nor_training(layer):
    offenders = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path)
                     if m.startswith(("nnunetv2_tevia.cli", "nnunetv2_tevia.training")))
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = bad
    assert not offenders, offenders


def test_prompt_tools_import_no_torch():
    code = ("import pkgutil, importlib, sys, nnunetv2_tevia.prompts as p\n"
            "[importlib.import_module('nnunetv2_tevia.prompts.' + m.name) for m in pkgutil.iter_modules(p.__path__)]\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_demo_modules_import_each_other_without_a_cycle():
    modules = {f"nnunetv2_tevia.demo.{p.stem}": p for p in (PACKAGE / "demo").glob("*.py")}
    graph = {m: {i for i in _imported_modules(p) if i in modules and i != m} for m, p in modules.items()}
    done, path = set(), []

    def visit(m):
        assert m not in path, " -> ".join(path[path.index(m):] + [m])
        if m not in done:
            path.append(m)
            for n in sorted(graph[m]):
                visit(n)
            path.pop()
            done.add(m)

    for m in sorted(graph):
        visit(m)


BUDGET_NAME = re.compile(r"Budget(\d+x\d+)?(_seed\d+)?$")


def test_the_package_trainer_namespace_holds_no_budget_wrapper(monkeypatch):
    """What a user's nnUNetv2_train -tr finds (the package's shim folder, training/all_trainers.py) has no demo or
    benchmark budget: those live in nnunetv2_tevia/demo/trainers.py and benchmarks/trainers/, registered only by the
    commands that train them (nnUNetv2_tevia_demo, the benchmark scripts)."""
    import importlib

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_tevia.demo.trainers import DemoBudgetMixin
    from nnunetv2_tevia.registration import shim_folder
    from nnunetv2_tevia.training import all_trainers

    shim = importlib.import_module("nnunetv2_tevia.ext_trainer.tevia_trainers")
    for namespace in (all_trainers, shim):
        classes = {n: c for n, c in vars(namespace).items() if isinstance(c, type)}
        assert "nnUNetTrainerTeViA" in classes and "nnUNetTrainerTeViA_noText" in classes
        wrappers = sorted(n for n, c in classes.items() if BUDGET_NAME.search(n) or "_demoBudget" in n
                          or issubclass(c, DemoBudgetMixin))
        assert wrappers == [], (namespace.__name__, wrappers)
    monkeypatch.setenv("nnUNet_extTrainer", shim_folder())  # a user's environment: the package's trainers alone
    for name in ("nnUNetTrainerTeViA_demoBudget", "nnUNetTrainer_demoBudget", "nnUNetTrainerTeViA_cpuBudget",
                 "nnUNetTrainer_gpuShortBudget", "nnUNetTrainerTeViA_gpuBudget"):
        with pytest.raises(RuntimeError, match="Could not find"):
            recursive_find_trainer_class_by_name(name)
    assert recursive_find_trainer_class_by_name("nnUNetTrainerTeViA_5epochs") is all_trainers.nnUNetTrainerTeViA_5epochs


def test_no_environment_variable_is_read_by_training_the_network_or_a_budget():
    """A budget is in the trainer's name, never in an environment variable that two budgets could share; training
    and the network read none at all (the command-line edge and nnunet_seam.py do)."""
    files = sorted((PACKAGE / "training").rglob("*.py")) + sorted((PACKAGE / "model").rglob("*.py")) + \
        [PACKAGE / "demo" / "trainers.py"]
    reads = [f"{p.relative_to(PACKAGE)}:{i}" for p in files for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\bos\.(environ|getenv)\b|\bgetenv\(", line)]
    assert reads == [], reads
