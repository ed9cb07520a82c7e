"""How much of a reworded report can any reader of the encoder's features get right? A linear probe.

    python benchmarks/wording_probe.py            # about 1 minute on the 2-core CPU

For the demo's 14 target sets, logistic regressions (one per zone: "is this lesion a target?") are fitted on the
default encoder's sentence features of training-wording reports (and, with paraphrases, their paraphrases), then
scored on reports in the training, validation and held-out wordings (demo/report_templates.py WORDINGS). Features:
the mean of the token features (the encoder's own sentence embedding), their max, and both. Prints the accuracy
per zone and for the whole target set. Chance: 0.5 per zone, 1/14 per set. A linear read-out is not what the
network does, but when it cannot separate "above on the left" from "below on the left" from the features, the
network's slots, made from the same features, start from the same confusion.
"""
import itertools

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from nnunetv2_tevia.demo.report_templates import ZONES, format_report
from nnunetv2_tevia.prompts.paraphrase import ParaphraseSettings, paraphrases
from nnunetv2_tevia.text.encoders import load_encoder

SETS = [c for k in (1, 2, 3) for c in itertools.combinations(ZONES, k)]


def features(encoder, texts):
    e = encoder.encode(texts, 32)
    f, m = torch.from_numpy(e.features.astype(np.float32)), torch.from_numpy(e.mask).float()
    mean = (f * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    top = (f + (m[..., None] - 1) * 1e4).max(1).values
    return {"mean": mean.numpy(), "max": top.numpy(), "mean+max": torch.cat([mean, top], 1).numpy()}


def reports(rng, wording: str, per_set: int, paraphrased: bool = False):
    texts, labels = [], []
    for s in SETS:
        for _ in range(per_set):
            t = format_report(list(s), rng, wording)
            for u in [t] + (paraphrases(t, ParaphraseSettings()) if paraphrased else []):
                texts.append(u)
                labels.append([z in s for z in ZONES])
    return texts, np.array(labels)


def main() -> None:
    encoder = load_encoder("default", device="cpu")
    rng = np.random.default_rng(0)
    tests = {w: reports(rng, w, 15) for w in ("training", "validation", "held-out")}
    test_features = {w: features(encoder, t) for w, (t, _) in tests.items()}
    print("| training texts | features | " + " | ".join(f"{w}: zone / set" for w in tests) + " |")
    print("|---|---|" + "---|" * len(tests))
    for paraphrased in (False, True):
        texts, labels = reports(rng, "training", 40, paraphrased)
        train = features(encoder, texts)
        for kind in ("mean", "max", "mean+max"):
            clfs = [LogisticRegression(max_iter=2000).fit(train[kind], labels[:, z]) for z in range(len(ZONES))]
            cells = []
            for w, (_, y) in tests.items():
                pred = np.stack([c.predict(test_features[w][kind]) for c in clfs], 1)
                cells.append(f"{np.mean(pred == y):.3f} / {np.mean((pred == y).all(1)):.3f}")
            print(f"| {'with paraphrases' if paraphrased else 'reports only'} | {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
