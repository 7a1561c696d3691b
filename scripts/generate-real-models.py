#!/usr/bin/env python3
"""Writes the model files the real servers serve (test/e2e/real-*.test.ts, `make run UPSTREAM=llama`).

    generate-real-models.py OUT_DIR

OUT_DIR/llama/tiny.gguf: a llama-architecture model small enough to generate in a fraction of a
second and to run at >1000 tokens/s on one core: 2 layers, embedding 128, 4 heads, context 512,
seeded random weights. Nothing about it is trained; what matters is that llama.cpp serves it the way
it serves a real model (chat template, streaming, grammar-constrained JSON, context limit).
Random weights alone make it emit raw bytes (NUL, broken UTF-8), which slows streaming to ~33 tok/s
and is not text. So one embedding dimension is a large constant that no layer writes to, and the
output rows of byte and special tokens weigh it negatively: after the final norm that dimension
dominates, and those tokens are never sampled. The model then writes printable ASCII only.

OUT_DIR/mlserver: an MLServer model repository with one scikit-learn classifier, "classifier", at
version v1 (LogisticRegression, classes 0, 1, 2), and model-v2.joblib beside it: the same features
trained on four classes (0-3), the "new model version with another label set" a rollout ships.

Every file is byte-identical for the same inputs: fixed seeds, no timestamps.
"""

import json
import sys
from pathlib import Path

import numpy as np

SEED = 20261207
N_EMBD, N_HEAD, N_LAYER, N_FF, N_CTX = 128, 4, 2, 256, 512
# Pieces the tokenizer prefers over single characters: common JSON structure and words, so
# constrained JSON and prompts take fewer tokens (llama's SentencePiece merges by score).
PIECES = ['{"', '":', '",', '"}', '":"', "▁the", "▁a", "▁is", "▁of", "▁and", "▁to", "▁in", "label", "score",
          "positive", "negative", "neutral", "0.", "1.", "e+", "▁hello", "▁story", "▁tell", "▁me", "ing",
          "er", "on", "an", "re", "▁you", "▁what", "▁it"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FEATURES = 4
# The embedding dimension that carries the bias against byte and special tokens (see the top).
BIAS_DIMENSION = 4.0


def vocabulary():
    """(tokens, scores, types): SentencePiece layout with byte fallback, as llama models have it."""
    from gguf import TokenType

    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [TokenType.BYTE] * 256
    tokens.append("▁")
    tokens += [chr(code) for code in range(0x21, 0x7F)]
    tokens += PIECES
    types += [TokenType.NORMAL] * (len(tokens) - len(types))
    scores = [0.0] * 259 + [-1000.0 + len(token) for token in tokens[259:]]
    return tokens, scores, types


def write_gguf(path: Path) -> None:
    from gguf import GGUFWriter

    tokens, scores, types = vocabulary()
    rng = np.random.default_rng(SEED)
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("inference-guard tiny test model")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)  # all float32
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weights(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.05, size=shape).astype(np.float32)

    n_vocab = len(tokens)
    embedding = weights(n_vocab, N_EMBD)
    embedding[:, 0] = BIAS_DIMENSION
    output = weights(n_vocab, N_EMBD)
    output[:, 0] = 0.0
    # Byte tokens, <unk> and <s> (not </s>: grammar-constrained output must be able to end).
    unwanted = [index for index, kind in enumerate(types) if index != 2 and int(kind) != 1]
    output[unwanted, 0] = -5.0
    # A milder push against </s>: free text then runs for a few hundred tokens, as streaming tests want.
    output[2, 0] = -0.4
    writer.add_tensor("token_embd.weight", embedding)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(N_EMBD, N_EMBD))
        # Rows 0 of the layers' outputs are zero: the constant dimension reaches the final norm intact.
        attention_out = weights(N_EMBD, N_EMBD)
        attention_out[0, :] = 0.0
        writer.add_tensor(f"{prefix}.attn_output.weight", attention_out)
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(N_FF, N_EMBD))
        ffn_down = weights(N_EMBD, N_FF)
        ffn_down[0, :] = 0.0
        writer.add_tensor(f"{prefix}.ffn_down.weight", ffn_down)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_classifiers(repository: Path) -> None:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    model_dir = repository / "classifier"
    model_dir.mkdir(parents=True, exist_ok=True)
    for version, classes in (("v1", 3), ("v2", 4)):
        features, labels = make_classification(
            n_samples=400, n_features=FEATURES, n_informative=3, n_redundant=0, n_classes=classes, random_state=SEED
        )
        model = LogisticRegression(max_iter=500).fit(features, labels)
        joblib.dump(model, model_dir / f"model-{version}.joblib")
    (repository / "settings.json").write_text(json.dumps({"parallel_workers": 0}) + "\n")
    write_model_settings(model_dir, "v1")


def write_model_settings(model_dir: Path, version: str) -> None:
    """The version MLServer serves: rewritten (then the model reloaded) to roll out another one."""
    settings = {
        "name": "classifier",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": f"./model-{version}.joblib", "version": version},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def main() -> None:
    out = Path(sys.argv[1])
    (out / "llama").mkdir(parents=True, exist_ok=True)
    write_gguf(out / "llama" / "tiny.gguf")
    write_classifiers(out / "mlserver")


if __name__ == "__main__":
    main()
