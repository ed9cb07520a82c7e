"""Design ablations of the text pathway in a plain training loop, on the real ``TeViANetwork`` and ``GuidedStage``.

    python benchmarks/plain_loop_ablation.py -o ablation_out --variants default conv_reader --seeds 0 1 --steps 500

The demo's task (four look-alike lesions, one per quadrant; the report names the 1-3 targets; demo/generator.py)
at 32 x 32, with fresh images every step, so nothing can be memorised and only reading the report scores above
the text-blind level (about 0.64). Each variant is a set of ``TeViAConfig`` switches plus training options
(``VARIANTS`` below); "plain" is the same U-Net without text. Training uses the demo's training wordings only;
every ``--eval-every`` steps the same 256 test images are scored (mean per-case Dice) with:

- ``training``: reports in the training wordings;
- ``validation``: reports in the validation wordings (demo/report_templates.py WORDINGS) - design choices are
  made on this row;
- ``held-out``: reports in the held-out wordings - reported, never used for a choice;
- ``swapped``: training-wording reports naming the other lesions, scored against those lesions' masks;
- ``no report``: the prompt file's no-report text.

Writes OUT/results.json (every score of every variant, seed and step) and OUT/results.md (the last step's table,
mean over seeds with each seed). A variant/seed already in results.json is skipped, so a second call resumes.
``--merge A B`` adds the runs of other output folders of the same budget (to run variants in parallel processes,
one thread each, then write one table). Budget on the 2-core CPU: about 1 minute per 500 steps of one variant and
seed (one thread).

The departures table of docs/architecture.md (each departure from the reference code undone alone):

    python benchmarks/plain_loop_ablation.py -o OUT --variants default no_text_norms sgd_text gate_0.01 \
        token_keys self_attention slot_sinusoid no_null_key on_inputs reference_slots reference plain \
        --seeds 0 1 --steps 800 --eval-every 200
"""
import argparse
import json
import os
import platform
import subprocess
import time
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunetv2_tevia.demo.generator import _draw_lesions, _render_image, render_mask
from nnunetv2_tevia.demo.report_templates import ZONES, format_report
from nnunetv2_tevia.io_utils import atomic_write_json
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.model.tevia_network import TeViANetwork
from nnunetv2_tevia.prompts.paraphrase import ParaphraseSettings, paraphrases
from nnunetv2_tevia.training.optimizer import PolyLRGroupScheduler, build_optimizer

SIZE = 32
TOKENS = 24
NO_REPORT = "No report. Possible findings: the lesions named in the report."
EVAL_ROWS = ("training", "validation", "held-out", "swapped", "no report")

# name -> (TeViAConfig switches, training options). "default" is nnUNetTrainerTeViA's design.
DEFAULT_SWITCHES = {"text_reader": "conv", "sentence_key": True}
DEFAULT_OPTIONS = {"paraphrase": True, "text_dropout": 0.2}


def one_change(switches: Optional[dict] = None, **options) -> tuple:
    """The default design with some ``TeViAConfig`` switches and training options changed."""
    return {**DEFAULT_SWITCHES, **(switches or {})}, {**DEFAULT_OPTIONS, **options}


VARIANTS: Dict[str, tuple] = {
    "default": one_change(),
    # reading what a report means (docs/architecture.md, "Reading what a report means")
    "attention_reader": one_change({"text_reader": "attention"}),
    "no_sentence_key": one_change({"sentence_key": False}),
    "no_paraphrase": one_change(paraphrase=False),
    "no_dropout": one_change(text_dropout=0.0),
    "dropout_0.3": one_change(text_dropout=0.3),
    "previous_default": one_change({"sentence_key": False}, paraphrase=False, text_dropout=0.0),
    # departures from the reference code, each undone alone (docs/architecture.md, "Departures ...")
    "no_text_norms": one_change({"text_norms": False}),
    "sgd_text": one_change(text_optimizer=None),
    "gate_0.01": one_change({"initial_scale": 0.01}),
    "token_keys": one_change({"text_reader": "tokens"}),
    "self_attention": one_change({"self_attention": True}),
    "slot_sinusoid": one_change({"slot_position": True}),
    "no_null_key": one_change({"null_key": False}),
    "on_inputs": one_change({"guide_inputs": True}),
    "reference_slots": one_change({"slots": [TOKENS, TOKENS // 2, 3 * TOKENS // 8]}),
    "reference": ({"design": "reference"}, {"paraphrase": False, "text_dropout": 0.0, "text_optimizer": None}),
    "plain": (None, {}),
}


class TextBank:
    """Every text's features, embedded once with the default encoder on first use."""

    def __init__(self):
        from nnunetv2_tevia.text.encoders import load_encoder
        self.encoder = load_encoder("default", device="cpu")
        self.rows: Dict[str, int] = {}
        self.features: List[torch.Tensor] = []
        self.masks: List[torch.Tensor] = []

    def lookup(self, texts: List[str]):
        new = sorted({t for t in texts if t not in self.rows})
        if new:
            enc = self.encoder.encode(new, TOKENS)
            for i, t in enumerate(new):
                self.rows[t] = len(self.features)
                self.features.append(torch.from_numpy(enc.features[i].astype(np.float32)))
                self.masks.append(torch.from_numpy(enc.mask[i]))
        idx = [self.rows[t] for t in texts]
        return torch.stack([self.features[i] for i in idx]), torch.stack([self.masks[i] for i in idx])


def make_batch(rng: np.random.Generator, n: int):
    """Images (n, 1, S, S), each image's lesions (for masks of any zone set) and its target zones."""
    images, lesions, targets = [], [], []
    for _ in range(n):
        ls = _draw_lesions(rng, SIZE, False)
        images.append(_render_image(rng, (SIZE, SIZE), ls).astype(np.float32))
        lesions.append(ls)
        targets.append([l["zone"] for l in ls if l["target"]])
    x = torch.from_numpy(np.stack(images))[:, None]
    return (x - x.mean()) / x.std(), lesions, targets


def masks(lesions, zone_sets) -> torch.Tensor:
    return torch.from_numpy(np.stack([render_mask((SIZE, SIZE), ls, list(z)) for ls, z in zip(lesions, zone_sets)]))


def dice_per_case(pred: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    p, t = pred.bool().flatten(1), truth.bool().flatten(1)
    return ((2 * (p & t).sum(1)) / (p.sum(1) + t.sum(1)).clamp_min(1)).numpy()


def build(variant: str):
    config_switches, _ = VARIANTS[variant]
    base = PlainConvUNet(1, 4, (16, 32, 64, 64), torch.nn.Conv2d, 3, (1, 2, 2, 2), 2, 2, 2, True,
                         torch.nn.InstanceNorm2d, {"affine": True}, nonlin=torch.nn.LeakyReLU, deep_supervision=False)
    if config_switches is None:
        return base, None
    net = TeViANetwork(base, TeViAConfig(text_tokens=TOKENS, text_dim=384, **config_switches))
    net.allow_no_report = True
    return net, net.guidance


def training_text(rng, report: str, options: dict, settings: ParaphraseSettings) -> str:
    if rng.random() < options.get("text_dropout", 0.0):
        return NO_REPORT
    if options.get("paraphrase"):
        choices = [report] + paraphrases(report, settings)
        return choices[int(rng.integers(len(choices)))]
    return report


def evaluate(net, bank: TextBank, test: dict, text: bool) -> Dict[str, float]:
    net.eval()
    out = {}
    with torch.no_grad():
        for row in EVAL_ROWS if text else ("plain",):
            truth = test["swapped_masks"] if row == "swapped" else test["masks"]
            if not text:
                logits = net(test["x"])
            else:
                reports = [NO_REPORT] * len(test["x"]) if row == "no report" else test["reports"][row]
                logits = net(test["x"], *bank.lookup(reports))
            out[row] = float(dice_per_case(logits.argmax(1), truth).mean())
    net.train()
    return out


def make_test_set(n: int = 256, seed: int = 12345) -> dict:
    rng = np.random.default_rng(seed)
    x, lesions, targets = make_batch(rng, n)
    others = [[z for z in ZONES if z not in t] for t in targets]
    reports = {w: [format_report(t, rng, w) for t in targets] for w in ("training", "validation", "held-out")}
    reports["swapped"] = [format_report(o, rng, "training") for o in others]
    return {"x": x, "masks": masks(lesions, targets), "swapped_masks": masks(lesions, others), "reports": reports}


def train(variant: str, seed: int, steps: int, eval_every: int, bank: TextBank, test: dict,
          batch_size: int = 16) -> List[dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net, guidance = build(variant)
    options = VARIANTS[variant][1]
    settings = ParaphraseSettings()
    opt = build_optimizer(net, guidance if guidance is not None else torch.nn.ModuleList(), 0.01, 3e-5,
                          options.get("text_optimizer", "adamw") if guidance is not None else None, 3e-4, 1e-2)
    schedule = PolyLRGroupScheduler(opt, steps)
    curve = []
    start = time.time()
    for step in range(steps):
        schedule.step(step)
        x, lesions, targets = make_batch(rng, batch_size)
        y = masks(lesions, targets).long()
        if guidance is None:
            logits = net(x)
        else:
            texts = [training_text(rng, format_report(t, rng, "training"), options, settings) for t in targets]
            logits = net(x, *bank.lookup(texts))
        probs = logits.softmax(1)[:, 1]
        soft_dice = 1 - (2 * (probs * y).sum() + 1) / (probs.sum() + y.sum() + 1)
        loss = F.cross_entropy(logits, y) + soft_dice
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        opt.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            scores = evaluate(net, bank, test, guidance is not None)
            curve.append({"step": step + 1, "seconds": round(time.time() - start, 1), **scores})
            print(f"{variant} seed {seed} step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()
                                                                       if k != "step"), flush=True)
    return curve


def write_table(results: dict, path: str) -> None:
    rows = ["| variant | seeds | " + " | ".join(EVAL_ROWS) + " |", "|---|---|" + "---|" * len(EVAL_ROWS)]
    for variant, by_seed in results["runs"].items():
        finals = {s: c[-1] for s, c in sorted(by_seed.items())}
        cells = []
        for row in EVAL_ROWS:
            key = "plain" if "plain" in next(iter(finals.values())) else row
            vals = [f[key] for f in finals.values()]
            cells.append(f"{np.mean(vals):.3f} ({', '.join(f'{v:.3f}' for v in vals)})")
        rows.append(f"| {variant} | {', '.join(finals)} | " + " | ".join(cells) + " |")
    meta = results["meta"]
    commits = sorted({c for by_seed in results.get("commits", {}).values() for c in by_seed.values()}) or \
        [meta["commit"]]
    text = (f"Plain-loop ablation, {meta['steps']} steps, batch 16, {SIZE} x {SIZE}, commit {', '.join(commits)}, "
            f"{meta['machine']}, {meta['date']}. Mean per-case Dice on 256 test images (each seed in brackets); "
            f"'plain' has no text, so every column shows its one score.\n\n" + "\n".join(rows) + "\n")
    with open(path, "w") as f:
        f.write(text)


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except Exception:
        return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--workdir", required=True, help="[REQUIRED] Output folder.")
    parser.add_argument("--variants", nargs="+", default=["default", "previous_default", "plain"],
                        choices=sorted(VARIANTS), help="[OPTIONAL] Variants to train. Default: default "
                                                       "previous_default plain")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="[OPTIONAL] Default: 0")
    parser.add_argument("--steps", type=int, default=500, help="[OPTIONAL] Training steps. Default: 500")
    parser.add_argument("--eval-every", type=int, default=250, help="[OPTIONAL] Default: 250")
    parser.add_argument("--threads", type=int, default=1, help="[OPTIONAL] torch threads. Default: 1")
    parser.add_argument("--merge", nargs="+", default=[], metavar="DIR",
                        help="[OPTIONAL] Output folders of other calls with the same --steps whose runs are added "
                             "to this one's results (a run already here is kept).")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "results.json")
    results = json.load(open(path)) if os.path.isfile(path) else {"runs": {}}
    meta = {"steps": args.steps, "commit": commit(), "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    if results.get("meta", {}).get("steps", args.steps) != args.steps:
        raise SystemExit(f"{path} holds runs of {results['meta']['steps']} steps; use another -o for {args.steps}")
    results["meta"] = meta
    for other_dir in args.merge:
        other = json.load(open(os.path.join(other_dir, "results.json")))
        if other["meta"]["steps"] != args.steps:
            raise SystemExit(f"{other_dir} holds runs of {other['meta']['steps']} steps, not {args.steps}")
        for variant, by_seed in other["runs"].items():
            for seed, curve in by_seed.items():
                if seed not in results["runs"].setdefault(variant, {}):
                    results["runs"][variant][seed] = curve
                    results.setdefault("commits", {}).setdefault(variant, {})[seed] = \
                        other.get("commits", {}).get(variant, {}).get(seed, other["meta"]["commit"])
    if args.merge:
        atomic_write_json(path, results)
    bank, test = TextBank(), make_test_set()
    for variant in args.variants:
        for seed in args.seeds:
            if str(seed) in results["runs"].get(variant, {}):
                continue
            curve = train(variant, seed, args.steps, args.eval_every, bank, test)
            results["runs"].setdefault(variant, {})[str(seed)] = curve
            results.setdefault("commits", {}).setdefault(variant, {})[str(seed)] = meta["commit"]
            atomic_write_json(path, results)
    write_table(results, os.path.join(args.workdir, "results.md"))
    print(open(os.path.join(args.workdir, "results.md")).read())


if __name__ == "__main__":
    main()
