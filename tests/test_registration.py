"""Zero-config trainer registration: the .pth file that pip installs beside the package.

Each install mode gets its own virtual environment, installed from this package's sdist, so the checks
see what a user's ``pip install .`` / ``pip install -e .`` produces. The environments reuse the running
interpreter's packages (torch, nnunetv2) through a plain path line in a .pth file rather than
``--system-site-packages``, because that flag (a) means the *base* interpreter when the tests run
inside a venv (CI's .venv), where torch is missing, and (b) would also run the base's .pth files,
among them a developer's own install of this package, which would hide a missing .pth here. A path
line adds the folder to ``sys.path`` without running the .pth files in it.
"""
import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnunetv2_tevia.registration import with_shim

REPO = Path(__file__).resolve().parents[1]
PTH = "nnunetv2_tevia_ext_trainer.pth"
MODES = ("regular", "editable")
# Build outputs and caches that must not leak into the sdist build.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".hypothesis", ".benchmarks", "tests", "benchmarks")


@dataclass
class Install:
    mode: str
    python: Path
    bin_dir: Path
    site_packages: Path
    prefix: Path
    shim: str  # the folder the .pth must add


def clean_env(**extra) -> dict:
    """The user's environment minus anything that could register the shim or shadow the install."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("nnUNet_extTrainer", "PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(cmd, *, cwd, env=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=clean_env() if env is None else env,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    return r


def build_sdist(workdir: Path) -> Path:
    src = workdir / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE)
    run([sys.executable, "setup.py", "-q", "sdist", "-d", workdir / "dist"], cwd=src)
    (archive,) = (workdir / "dist").glob("*.tar.gz")
    return archive


def install_from_sdist(archive: Path, workdir: Path, mode: str) -> Install:
    with tarfile.open(archive) as tar:
        tar.extractall(workdir / "unpacked", filter="data")
    (source,) = (workdir / "unpacked").iterdir()
    prefix = workdir / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", prefix], cwd=workdir)
    bin_dir = prefix / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             cwd=workdir).stdout.strip())
    # Named to sort after our .pth, so that it cannot be what makes nnunetv2_tevia findable there.
    (site_packages / "zz_outer_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # --ignore-installed: pip must neither uninstall nor reuse the outer environment's nnunetv2-tevia.
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--ignore-installed", *(["-e"] if mode == "editable" else []), source], cwd=workdir)
    package_root = source if mode == "editable" else site_packages
    return Install(mode, python, bin_dir, site_packages, prefix,
                   shim=str(package_root / "nnunetv2_tevia" / "ext_trainer"))


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    return build_sdist(tmp_path_factory.mktemp("sdist"))


@pytest.fixture(scope="module")
def installed(sdist, tmp_path_factory):
    """``installed(mode)``: one venv per mode, built on first use and shared by the module's tests."""
    cache = {}

    def get(mode: str) -> Install:
        if mode not in cache:
            cache[mode] = install_from_sdist(sdist, tmp_path_factory.mktemp(mode), mode)
        return cache[mode]
    return get


def python_in(inst: Install, code: str, tmp_path, **env) -> str:
    # cwd is an empty folder so that '' on sys.path cannot shadow the installed package.
    return run([inst.python, "-c", code], cwd=tmp_path, env=clean_env(**env)).stdout


def test_sdist_ships_pth_build_config_and_templates(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {PTH, "setup.py", "pyproject.toml", "MANIFEST.in", "README.md"} <= names
    templates = {f"text_prompts/{p.name}" for p in (REPO / "text_prompts").glob("*.json")}
    assert templates and templates <= names


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_install_ships_pth_in_record(installed, mode):
    inst = installed(mode)
    pth = inst.site_packages / PTH
    assert pth.read_bytes() == (REPO / PTH).read_bytes()
    dist_info = next(inst.site_packages.glob("nnunetv2_tevia-*.dist-info"))
    # pip uninstall removes exactly what RECORD lists; a .pth left behind would break every later start.
    assert any(line.split(",")[0] == PTH for line in (dist_info / "RECORD").read_text().splitlines())


@pytest.mark.slow
def test_regular_install_puts_templates_under_share(installed):
    # Editable installs get no data files (setuptools limitation); they use the clone's text_prompts/.
    inst = installed("regular")
    shipped = {p.name for p in (inst.prefix / "share" / "nnunetv2_tevia" / "text_prompts").glob("*.json")}
    assert shipped == {p.name for p in (REPO / "text_prompts").glob("*.json")}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_trainers_resolve_to_package_classes_without_any_setup(installed, mode, tmp_path):
    inst = installed(mode)
    out = python_in(inst, """if True:
        import json, os
        import nnunetv2_tevia
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
        from nnunetv2_tevia.training import all_trainers
        names = ["nnUNetTrainerTeViA", "nnUNetTrainerTeViA_5epochs"]
        found = {n: recursive_find_trainer_class_by_name(n) is getattr(all_trainers, n) for n in names}
        from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
        found["base"] = all_trainers.nnUNetTrainerTeViA is nnUNetTrainerTeViA
        print(json.dumps({"env": os.environ["nnUNet_extTrainer"], "found": found,
                          "package": os.path.dirname(nnunetv2_tevia.__file__)}))
        """, tmp_path)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["env"] == inst.shim
    assert Path(result["package"]) == Path(inst.shim).parent
    assert result["found"] == {"nnUNetTrainerTeViA": True, "nnUNetTrainerTeViA_5epochs": True, "base": True}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_appends_to_an_existing_value(installed, mode, tmp_path):
    inst = installed(mode)
    existing = os.pathsep.join(["/opt/a", "/opt/b"])
    out = python_in(inst, "import os; print(os.environ['nnUNet_extTrainer'])", tmp_path,
                    nnUNet_extTrainer=existing)
    assert out.strip() == os.pathsep.join(["/opt/a", "/opt/b", inst.shim])


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_never_added_twice(installed, mode, tmp_path):
    inst = installed(mode)
    # A nested interpreter inherits the value that the outer one's .pth set and runs the .pth again.
    nested = ("import os, subprocess, sys; print(subprocess.run([sys.executable, '-c', "
              "'import os; print(os.environ[\"nnUNet_extTrainer\"])'], capture_output=True, text=True).stdout)")
    assert python_in(inst, nested, tmp_path).strip() == inst.shim
    # The same folder reached through a symlink is the same folder.
    link = tmp_path / "shim_link"
    link.symlink_to(inst.shim, target_is_directory=True)
    existing = os.pathsep.join(["/opt/a", str(link)])
    out = python_in(inst, "import os; print(os.environ['nnUNet_extTrainer'])", tmp_path,
                    nnUNet_extTrainer=existing)
    assert out.strip() == existing


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_start_up_imports_neither_torch_nor_the_package(installed, mode, tmp_path):
    inst = installed(mode)
    loaded = json.loads(python_in(
        inst, "import json, sys; print(json.dumps([m for m in ('torch', 'nnunetv2', 'nnunetv2_tevia') "
              "if m in sys.modules]))", tmp_path))
    assert loaded == []
    r = run([inst.python, "-X", "importtime", "-c", "pass"], cwd=tmp_path)
    # Lines read "import time: self | cumulative | <indent>module".
    modules = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert modules, "no -X importtime output"
    heavy = {m for m in modules if m.split(".")[0] in ("torch", "nnunetv2", "nnunetv2_tevia", "numpy")}
    assert heavy == set()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_env_command_prints_a_working_export_line(installed, mode, tmp_path):
    inst = installed(mode)
    env_cmd = inst.bin_dir / "nnUNetv2_tevia_env"
    assert run([env_cmd, "--folder-only"], cwd=tmp_path).stdout.strip() == inst.shim
    line = run([env_cmd], cwd=tmp_path).stdout.strip()
    assert line.startswith("export nnUNet_extTrainer=") and inst.shim in line
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is needed to evaluate the export line")
    # The line must work in a shell whether or not the variable is already set.
    show = f'{line}; printf %s "$nnUNet_extTrainer"'
    assert run([bash, "-c", show], cwd=tmp_path).stdout == inst.shim
    assert run([bash, "-c", show], cwd=tmp_path, env=clean_env(nnUNet_extTrainer="/opt/a")).stdout \
        == os.pathsep.join(["/opt/a", inst.shim])


@pytest.mark.slow
def test_nnunet_own_unit_tests_pass_with_the_package_registered(tmp_path):
    # nnunetv2.tests holds offline CPU unit tests only (test_find_objects, test_paths; ~35 s here, mostly
    # imports); the integration_tests folder there is scripts that pytest does not collect.
    env = clean_env(nnUNet_extTrainer=with_shim(os.environ.get("nnUNet_extTrainer", "")))
    r = run([sys.executable, "-m", "pytest", "--pyargs", "nnunetv2.tests", "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path, env=env, check=False, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and " failed" not in r.stdout
