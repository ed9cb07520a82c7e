"""The demo's training budget (used by ``training/variants/demo_budget.py`` and ``nnUNetv2_tevia_demo``), sized
so that the whole demo finishes within 20 minutes on a 2-core CPU; docs/demo.md has the measured times."""
EPOCHS_ENV, ITERATIONS_ENV = "TEVIA_DEMO_EPOCHS", "TEVIA_DEMO_ITERATIONS"
SEED_ENV = "TEVIA_DEMO_SEED"
DEMO_EPOCHS = 20
DEMO_ITERATIONS = 25
# nnU-Net plans batch 100 for the demo's 2000 small images (at most 5 % of the dataset per batch); at 64 x 64 a
# batch of 16 makes many more steps in the same time, which both trainers need more than big batches.
DEMO_BATCH_SIZE = 16
