"""nnU-Net's ``nnUNet_extTrainer`` search imports this folder's modules and drops them afterwards, so this module only
re-exports the benchmarks' budget trainers, which live in benchmarks/trainers/bench_trainers.py (its
``registered_env`` puts that folder on PYTHONPATH and this one on ``nnUNet_extTrainer``)."""
from bench_trainers import __getattr__  # noqa: F401  (PEP 562: nnU-Net's hasattr builds a trainer by its name)
from bench_trainers import *  # noqa: F401,F403
