"""Text dropout: dropped samples get the no-report row, and a text-dropout network serves cases without text.

The per-batch lookup is the trainer's own ``_batch_text``, run on a trainer-like object that holds a real
``CaseTextTable``; the network comes from the trainer's own ``build_network_architecture`` (what
nnUNetv2_predict calls). That the trainer writes ``text_dropout`` into the plans is checked on a real
trainer in test_training_text_checks.py.
"""
import types

import numpy as np
import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_tevia.errors import MissingTextError
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.training.case_text import NO_REPORT_ROW, CaseTextTable
from nnunetv2_tevia.nnunet_seam import ALLOW_NO_REPORT_ENV
from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

L, D = 6, 8
CASES = [f"case_{i}" for i in range(5)]


def make_table() -> CaseTextTable:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((len(CASES) + 1, L, D)).astype(np.float16)  # distinct rows
    masks = np.ones((len(CASES) + 1, L), dtype=bool)
    masks[NO_REPORT_ROW, 3:] = False
    return CaseTextTable(features, masks, {k: i + 1 for i, k in enumerate(CASES)})


def batch_text(table: CaseTextTable, text_dropout: float, keys, training: bool):
    trainer_like = types.SimpleNamespace(text_table=table, text_dropout=text_dropout, sample_text_variants=False)
    return nnUNetTrainerTeViA._batch_text(trainer_like, keys, training)


def dropped_flags(table: CaseTextTable, text_dropout: float, training: bool, batches: int = 1000):
    """Per sample: True if it got the no-report row; every other sample must carry its own case's row."""
    flags = []
    for b in range(batches):
        keys = [CASES[(2 * b) % len(CASES)], CASES[(2 * b + 1) % len(CASES)]]  # nnU-Net-sized batches of 2
        features, masks = batch_text(table, text_dropout, keys, training)
        for k, f, m in zip(keys, features, masks):
            own = table.rows[k]
            if torch.equal(f, table.features[NO_REPORT_ROW]) and torch.equal(m, table.masks[NO_REPORT_ROW]):
                flags.append(True)
            else:
                assert torch.equal(f, table.features[own]) and torch.equal(m, table.masks[own]), k
                flags.append(False)
    return np.array(flags)


def test_dropout_replaces_rows_with_no_report_row_at_its_rate():
    np.random.seed(1234)  # the trainer draws from numpy's global generator
    flags = dropped_flags(make_table(), 0.3, training=True)
    # 2000 samples: the binomial standard deviation is ~0.010, so this is a 3-sigma band
    assert 0.27 < flags.mean() < 0.33, flags.mean()
    # drawn per sample, not per batch: one of two dropped in 2 * 0.3 * 0.7 = 42% of batches (sd ~1.6%)
    one_of_two = flags.reshape(-1, 2).sum(1) == 1
    assert 0.37 < one_of_two.mean() < 0.47, one_of_two.mean()


@pytest.mark.parametrize("text_dropout, training", [(0.0, True), (0.3, False)])
def test_no_dropout_without_rate_or_outside_training(text_dropout, training):
    np.random.seed(0)
    assert not dropped_flags(make_table(), text_dropout, training, batches=200).any()


def plans_with(text_dropout: float, case_text: bool = True) -> PlansManager:
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 4, "features_per_stage": [4, 8, 16, 24], "conv_op": "torch.nn.modules.conv.Conv2d",
            "kernel_sizes": [[3, 3]] * 4, "strides": [[1, 1], [2, 2], [2, 2], [2, 2]], "n_conv_per_stage": [1] * 4,
            "n_conv_per_stage_decoder": [1] * 3, "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    tevia = TeViAConfig(text_tokens=L, text_dim=D, text_dropout=text_dropout, case_text=case_text,
                        no_report_text="No report.")
    return PlansManager({"dataset_name": "Dataset999_Dropout", "plans_name": "nnUNetPlans",
                         "configurations": {"2d": {"patch_size": [32, 32], "architecture": arch}},
                         PLANS_KEY: tevia.to_dict()})


def build(plans: PlansManager):
    # the call nnUNetv2_predict makes (deep supervision off), then the checkpoint's no-report buffers
    net = nnUNetTrainerTeViA.build_network_architecture(plans, plans.get_configuration("2d"), 1, 2, False)
    torch.manual_seed(0)
    net.set_no_report_text(torch.randn(L, D), torch.arange(L) < 4)
    return net.eval()


def test_text_dropout_network_serves_the_no_report_text_but_only_when_given_it(monkeypatch):
    """Issue 20: a forward that reaches the network without a text raises, also for a text-dropout model (the
    default); nnUNetv2_tevia_predict passes the no-report text explicitly for a case without a report."""
    net = build(plans_with(0.3))
    assert not net.allow_no_report and net.config.serves_no_report
    x = torch.randn(2, 1, 32, 32)
    with pytest.raises(MissingTextError, match=ALLOW_NO_REPORT_ENV):
        net(x)
    monkeypatch.setenv(ALLOW_NO_REPORT_ENV, "1")
    net = build(plans_with(0.3))
    torch.manual_seed(0)
    net.set_no_report_text(torch.randn(L, D), torch.arange(L) < 4)
    with torch.no_grad():
        implicit = net.eval()(x)
        explicit = net(x, net.no_report_text_features[None].expand(2, -1, -1),
                       net.no_report_text_mask[None].expand(2, -1))
        other = net(x, torch.randn(2, L, D), torch.ones(2, L, dtype=torch.bool))
    torch.testing.assert_close(implicit, explicit)
    assert not torch.allclose(implicit, other)


def test_model_without_text_dropout_refuses_missing_text(monkeypatch):
    net = build(plans_with(0.0))
    assert not net.allow_no_report
    with pytest.raises(MissingTextError, match=ALLOW_NO_REPORT_ENV):
        net(torch.randn(1, 1, 32, 32))
    assert build(plans_with(0.0, case_text=False)).allow_no_report  # _noText: trained on the no-report text
    monkeypatch.setenv(ALLOW_NO_REPORT_ENV, "1")
    assert build(plans_with(0.0)).allow_no_report


def test_one_rule_for_a_case_without_a_report_at_prediction():
    """The model's no-report text for a model that serves such cases, with a line naming them; an error for one
    that never saw the no-report text (unless --allow-missing-text); the prompt file's "default" first."""
    from nnunetv2_tevia.errors import MissingTextError
    from nnunetv2_tevia.inference.case_texts import texts_for_cases
    from nnunetv2_tevia.prompts.prompt_file import PromptFile

    pf = PromptFile(path="p.json", cases={"a": "two lesions.", "b": ""})
    serving = TeViAConfig(text_tokens=L, text_dim=D, no_report_text="MODEL NO-REPORT")  # the default: dropout 0.2
    not_serving = TeViAConfig(text_tokens=L, text_dim=D, no_report_text="MODEL NO-REPORT", text_dropout=0.0)
    said = []
    texts = texts_for_cases(pf, ["a", "b"], serving, False, log=said.append)
    assert {k: c.text for k, c in texts.items()} == {"a": "two lesions.", "b": "MODEL NO-REPORT"}
    assert len(said) == 1 and "1 of 2 case(s) have no report" in said[0] and "b" in said[0]
    with pytest.raises(MissingTextError, match="'?b'?"):
        texts_for_cases(pf, ["a", "b"], not_serving, False, log=said.append)
    assert texts_for_cases(pf, ["a", "b"], not_serving, True, log=said.append)["b"].text == "MODEL NO-REPORT"
    with_default = PromptFile(path="p.json", cases={"a": "two lesions."}, default="No report.")
    assert texts_for_cases(with_default, ["a", "b"], serving, False, log=said.append)["b"].text == "No report."
