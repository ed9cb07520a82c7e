"""nnU-Net's local logger, extended with TeViA's per-epoch values.

``LocalLogger.log`` asserts that a key was declared, so the keys are declared here. The progress plot of
nnU-Net stays as it is; the TeViA values get their own ``progress_tevia.png`` beside it.
"""
from os.path import join

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
from nnunetv2.training.logging.nnunet_logger import LocalLogger  # noqa: E402

TEVIA_KEYS = ("alignment_losses", "prototype_active_stages", "guided_stage_gates")


class TeViALocalLogger(LocalLogger):
    def __init__(self, verbose: bool = False):
        super().__init__(verbose)
        self._declare()

    def _declare(self):
        for k in TEVIA_KEYS:
            self.my_fantastic_logging.setdefault(k, [])

    def load_checkpoint(self, checkpoint: dict):
        super().load_checkpoint(checkpoint)
        self._declare()  # checkpoints of plain nnU-Net lack the keys

    def plot_progress_png(self, output_folder):
        super().plot_progress_png(output_folder)
        align = self.my_fantastic_logging["alignment_losses"]
        proto = self.my_fantastic_logging["prototype_active_stages"]
        gates = self.my_fantastic_logging["guided_stage_gates"]
        n = min(len(align), len(proto))
        if n == 0:
            return
        fig, (ax, ax3) = plt.subplots(2, 1, figsize=(12, 8))
        ax.plot(range(n), align[:n], color="purple", label="alignment loss (1 - cos)", linewidth=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("alignment loss")
        ax2 = ax.twinx()
        ax2.step(range(n), proto[:n], color="orange", where="post", label="active prototypes (stages)")
        ax2.set_ylabel("active prototype stages")
        ax.legend(loc=(0, 1))
        ax2.legend(loc=(0.4, 1))
        # the gates scale what the report adds to the decoder: a model whose gates shrink to 0 ignores the text
        ax3.plot(range(min(n, len(gates))), gates[:n], color="teal", linewidth=3,
                 label="mean |gate| of the guided stages")
        ax3.set_xlabel("epoch")
        ax3.set_ylabel("gate")
        ax3.legend()
        fig.tight_layout()
        fig.savefig(join(output_folder, "progress_tevia.png"))
        plt.close(fig)
