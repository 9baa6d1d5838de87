"""The `local` profile's model: a tiny random Qwen2 causal LM, built offline and byte-identical.

``python -m harness.tiny_model [--out DIR] [--seed N]`` writes a Hugging Face model folder that
vLLM serves on CPU in seconds. The tokenizer is a byte-level BPE trained on the bundled corpus
with Qwen2's own pre-tokenizer regex and the ChatML chat template; the weights come from a
seeded generator. Every file is written by this module (no ``save_pretrained``), so a rebuild
with the same seed gives the same bytes; the printed manifest hash lets anyone check that.

A random model needs two things to be a useful test subject: untied input/output embeddings
and a large init std, so greedy decoding gives varied, sharply-ranked tokens rather than one
token repeated. Special tokens and non-printable byte tokens get an all-zero output row, so
greedy decoding never ends early and never emits half a UTF-8 character.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

__all__ = [
    "DEFAULT_SEED",
    "OTHER_SEED",
    "build",
    "ensure_built",
    "manifest_hash",
    "CORPUS",
    "SPECIAL_TOKENS",
    "VOCAB_SIZE",
    "HIDDEN",
    "LAYERS",
    "HEADS",
    "KV_HEADS",
    "INTERMEDIATE",
    "MAX_POSITIONS",
    "INIT_STD",
    "QWEN2_SPLIT_REGEX",
    "CHATML_TEMPLATE",
    "FILES",
    "main",
]

DEFAULT_SEED = 0
# A second, different model for the "miner serves another model" cheat.
OTHER_SEED = 1

CORPUS = Path(__file__).parent / "data" / "corpus.txt"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
VOCAB_SIZE = 1024
HIDDEN = 128
LAYERS = 2
HEADS = 2  # head_dim 64: a size every vLLM CPU attention backend supports
KV_HEADS = 1
INTERMEDIATE = 256
MAX_POSITIONS = 2048
INIT_STD = 0.5

# Qwen2's pre-tokenizer regex (from its tokenizer.json): contractions, letters with one leading
# non-letter, single digits, punctuation runs, newlines, spaces.
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)


def _train_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS.read_text().splitlines(), trainer=trainer)
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


def _printable_ids(tokenizer) -> list[int]:
    """Token ids that decode to printable ASCII (or plain whitespace) on their own."""
    ok = []
    for token_id in range(tokenizer.get_vocab_size()):
        text = tokenizer.decode([token_id], skip_special_tokens=True)
        if text and all(c.isprintable() or c in " \n" for c in text) and text.isascii():
            ok.append(token_id)
    return ok


def _weights(seed: int, vocab: int, printable: list[int]) -> dict:
    import torch

    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * INIT_STD

    head_dim = HIDDEN // HEADS
    tensors = {"model.embed_tokens.weight": normal(vocab, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = torch.ones(HIDDEN)
        tensors[p + "post_attention_layernorm.weight"] = torch.ones(HIDDEN)
        tensors[p + "self_attn.q_proj.weight"] = normal(HEADS * head_dim, HIDDEN)
        tensors[p + "self_attn.q_proj.bias"] = normal(HEADS * head_dim)
        tensors[p + "self_attn.k_proj.weight"] = normal(KV_HEADS * head_dim, HIDDEN)
        tensors[p + "self_attn.k_proj.bias"] = normal(KV_HEADS * head_dim)
        tensors[p + "self_attn.v_proj.weight"] = normal(KV_HEADS * head_dim, HIDDEN)
        tensors[p + "self_attn.v_proj.bias"] = normal(KV_HEADS * head_dim)
        tensors[p + "self_attn.o_proj.weight"] = normal(HIDDEN, HEADS * head_dim)
        tensors[p + "mlp.gate_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.up_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.down_proj.weight"] = normal(HIDDEN, INTERMEDIATE)
    tensors["model.norm.weight"] = torch.ones(HIDDEN)
    lm_head = torch.zeros(vocab, HIDDEN)
    lm_head[printable] = normal(vocab, HIDDEN)[printable]
    tensors["lm_head.weight"] = lm_head
    return {name: t.contiguous() for name, t in tensors.items()}


def _config(vocab: int, special_ids: dict[str, int]) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS,
        "max_window_layers": LAYERS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "initializer_range": INIT_STD,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "bos_token_id": special_ids["<|endoftext|>"],
        "eos_token_id": special_ids["<|im_end|>"],
    }


def _tokenizer_config(special_ids: dict[str, int]) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_POSITIONS,
        "chat_template": CHATML_TEMPLATE,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "added_tokens_decoder": {
            str(token_id): {
                "content": token,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "single_word": False,
                "special": True,
            }
            for token, token_id in special_ids.items()
        },
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def build(out: Path, seed: int = DEFAULT_SEED) -> str:
    """Write the model folder for ``seed`` into ``out`` and return its manifest hash."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    vocab = tokenizer.get_vocab_size()
    special_ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    tokenizer.save(str(out / "tokenizer.json"))
    _write_json(out / "tokenizer_config.json", _tokenizer_config(special_ids))
    _write_json(out / "config.json", _config(vocab, special_ids))
    _write_json(
        out / "generation_config.json",
        {"bos_token_id": special_ids["<|endoftext|>"], "eos_token_id": special_ids["<|im_end|>"]},
    )
    weights = _weights(seed, vocab, _printable_ids(tokenizer))
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    # Containers read the folder as another user through a read-only mount.
    (out / "model.safetensors").chmod(0o644)
    return manifest_hash(out)


def manifest_hash(model_dir: Path) -> str:
    """sha256 over every model file's name and sha256: equal hashes mean byte-identical models."""
    manifest = hashlib.sha256()
    for name in FILES:
        digest = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        manifest.update(f"{name} {digest}\n".encode())
    return manifest.hexdigest()


def ensure_built(out: Path, seed: int = DEFAULT_SEED) -> Path:
    """Build the model into ``out`` unless every file is already there; returns ``out``."""
    if not all((out / name).is_file() for name in FILES):
        build(out, seed)
    return out


def main() -> None:
    from harness.profile import get_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(get_profile("local").model_dir))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    digest = build(args.out, args.seed)
    print(f"{args.out} seed={args.seed} manifest={digest}")


if __name__ == "__main__":
    main()
