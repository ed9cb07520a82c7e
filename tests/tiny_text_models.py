"""Tiny, randomly initialised text models saved to disk, so encoder tests use the real loading paths offline."""
import json
import os

WORDS = ("left right upper middle lower lung lungs bilateral unilateral pulmonary infection infected area areas "
         "one two three four five six and no finding , .").split()


def make_tiny_bert(folder, seed: int = 0, max_positions: int = 64) -> str:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    os.makedirs(folder, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab_file = os.path.join(folder, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    # transformers 5 reads the vocabulary from vocab= (vocab_file= is silently ignored there, which left every word
    # [UNK] and every text with the same features); transformers 4 reads vocab_file=
    tokenizer = BertTokenizerFast(vocab_file=vocab_file, vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    assert tokenizer.convert_tokens_to_ids(["lung"]) == [vocab.index("lung")], "the tiny tokenizer lost its vocabulary"
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                        vocab_size=len(vocab), max_position_embeddings=max_positions, pad_token_id=0)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def register_tiny_clip(folder, name: str = "tevia-tiny-clip", hf_text_folder=None) -> str:
    """Register an open_clip config small enough for CPU tests; with ``hf_text_folder`` the text tower
    is an HF model (as in BiomedCLIP)."""
    import open_clip

    if hf_text_folder:
        text_cfg = {"hf_model_name": str(hf_text_folder), "hf_tokenizer_name": str(hf_text_folder),
                    "hf_proj_type": "linear", "hf_pooler_type": "cls_last_hidden_state_pooler",
                    "context_length": 64}
    else:
        text_cfg = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
           "text_cfg": text_cfg}
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    open_clip.add_model_config(path)
    return name
