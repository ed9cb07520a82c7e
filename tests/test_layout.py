"""The package's layering, checked on the source: the library layers never import the command or training layers,
the prompt tools run without torch, and no module grows past 300 lines."""
import ast
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


def test_no_module_over_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
