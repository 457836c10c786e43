#!/usr/bin/env python3
"""Writes a Llama-architecture GGUF with random weights at the shapes of a real model, for
speed comparisons where the real weights are not at hand: llama.cpp reads it directly and
`edgelm-convert --quant keep` imports the very same quantized values, so both programs run
identical weights. The tokenizer is a placeholder SentencePiece vocabulary (byte tokens plus
fillers) that both programs load; the text it would produce is meaningless.

    python3 benches/random_gguf.py tinyllama-1.1b q4_0 OUT.gguf
Needs numpy and the `gguf` package (pip install gguf)."""
import sys

import numpy as np
import gguf

SHAPES = {
    # hidden, ff, layers, heads, kv heads, vocab, tied
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, True),
    "tinyllama-1.1b": (2048, 5632, 22, 32, 4, 32000, False),
}
TYPES = {"q4_0": (gguf.GGMLQuantizationType.Q4_0, 18), "q8_0": (gguf.GGMLQuantizationType.Q8_0, 34)}


def random_blocks(rng, rows, cols, ty):
    """Random blocks of 32 values: a small f16 scale, then random quants."""
    qtype, size = TYPES[ty]
    blocks = rng.integers(0, 256, size=(rows, cols // 32, size), dtype=np.uint8)
    scales = rng.uniform(0.002, 0.02, size=(rows, cols // 32)).astype(np.float16)
    blocks[:, :, :2] = scales.view(np.uint8).reshape(rows, cols // 32, 2)
    return blocks.reshape(rows, cols // 32 * size), qtype


def main(preset, ty, out):
    hidden, ff, layers, heads, kv_heads, vocab, tied = SHAPES[preset]
    head_dim = hidden // heads
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(f"random {preset}")
    w.add_context_length(2048)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_block_count(layers)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581tok{i}" for i in range(vocab - len(tokens))]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(vocab - 259)])
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (vocab - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def matrix(name, rows, cols):
        data, qtype = random_blocks(rng, rows, cols, ty)
        w.add_tensor(name, data, raw_dtype=qtype)

    def norm(name):
        w.add_tensor(name, np.ones(hidden, dtype=np.float32))

    matrix("token_embd.weight", vocab, hidden)
    norm("output_norm.weight")
    if not tied:
        matrix("output.weight", vocab, hidden)
    for i in range(layers):
        norm(f"blk.{i}.attn_norm.weight")
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", heads * head_dim, hidden)
        matrix(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
        matrix(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
        matrix(f"blk.{i}.attn_output.weight", hidden, heads * head_dim)
        matrix(f"blk.{i}.ffn_gate.weight", ff, hidden)
        matrix(f"blk.{i}.ffn_up.weight", ff, hidden)
        matrix(f"blk.{i}.ffn_down.weight", hidden, ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in SHAPES or sys.argv[2] not in TYPES:
        sys.exit(f"usage: random_gguf.py {{{','.join(SHAPES)}}} {{{','.join(TYPES)}}} OUT.gguf")
    main(*sys.argv[1:])
