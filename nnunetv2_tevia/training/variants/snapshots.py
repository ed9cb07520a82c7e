"""Checkpoints kept along the way, for learning curves (benchmarks/demo_learning_curves.py, gpu_long_schedule.py).

nnU-Net keeps only checkpoint_latest/best/final. With ``TEVIA_SNAPSHOT_EVERY=K`` set, the budget variants also
keep ``checkpoint_step<N>.pth`` every K epochs, N the training steps done so far.
"""
import os

SNAPSHOT_ENV = "TEVIA_SNAPSHOT_EVERY"


class SnapshotMixin:
    """Mixin placed before the trainer."""

    def on_epoch_end(self):
        super().on_epoch_end()  # counts the epoch
        every = int(os.environ.get(SNAPSHOT_ENV, 0))
        if every and self.current_epoch % every == 0:
            steps = self.current_epoch * self.num_iterations_per_epoch
            self.save_checkpoint(os.path.join(self.output_folder, f"checkpoint_step{steps}.pth"))
