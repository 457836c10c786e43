#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into fuzz/corpus/<target>/ (stdlib only).

- safetensors_config: micro Llama, Qwen2, Qwen3, Phi-3, Gemma 3 and BERT models (config.json +
  safetensors, a few KB),
  in the target's input format (u16 config length, config.json, safetensors bytes);
- gguf: the quantized tiny-llama GGUF fixtures (tests/fixtures/tiny-llama-gguf);
- wav: small WAV files of every encoding the reader takes (8/16/24/32-bit PCM, 32/64-bit float,
  WAVE_FORMAT_EXTENSIBLE, stereo, 44.1 kHz, an odd-sized LIST chunk) and an A-law one it refuses;
- packed_header: those GGUFs converted by edgelm-convert (path given as the first argument,
  default target-tools/release/edgelm-convert), if it is built.

Run from the repository root: python3 fuzz/make_seeds.py [EDGELM_CONVERT]
"""

import json
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz/corpus"


def safetensors(tensors):
    """tensors: name -> (shape, list of floats), stored F32."""
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def rand(shape, rng):
    n = 1
    for d in shape:
        n *= d
    return shape, [rng.gauss(0, 0.1) for _ in range(n)]


def decoder(model_type, rng):
    h, ff, vocab = 32, 32, 4
    config = {"model_type": model_type, "hidden_size": h, "intermediate_size": ff, "num_hidden_layers": 1,
              "num_attention_heads": 1, "num_key_value_heads": 1, "vocab_size": vocab,
              "max_position_embeddings": 16, "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
    t = {"model.embed_tokens.weight": rand([vocab, h], rng), "model.norm.weight": rand([h], rng)}
    p = "model.layers.0."
    layer = [("input_layernorm.weight", [h]), ("post_attention_layernorm.weight", [h]),
             ("self_attn.o_proj.weight", [h, h]), ("mlp.down_proj.weight", [h, ff])]
    if model_type == "phi3":
        layer += [("self_attn.qkv_proj.weight", [3 * h, h]), ("mlp.gate_up_proj.weight", [2 * ff, h])]
    else:
        layer += [("self_attn.q_proj.weight", [h, h]), ("self_attn.k_proj.weight", [h, h]),
                  ("self_attn.v_proj.weight", [h, h]), ("mlp.gate_proj.weight", [ff, h]),
                  ("mlp.up_proj.weight", [ff, h])]
    if model_type in ("qwen3", "gemma3_text"):
        layer += [("self_attn.q_norm.weight", [h]), ("self_attn.k_norm.weight", [h])]
    if model_type == "gemma3_text":
        layer += [("pre_feedforward_layernorm.weight", [h]), ("post_feedforward_layernorm.weight", [h])]
        config.update({"hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 24, "sliding_window": 4,
                       "layer_types": ["sliding_attention"],
                       "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                           "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}})
    for name, shape in layer:
        t[p + name] = rand(shape, rng)
    if model_type == "qwen2":
        for x in "qkv":
            t[p + f"self_attn.{x}_proj.bias"] = rand([h], rng)
    return config, t


def bert(rng):
    h, ff, vocab = 32, 32, 4
    config = {"model_type": "bert", "hidden_size": h, "intermediate_size": ff, "num_hidden_layers": 1,
              "num_attention_heads": 1, "vocab_size": vocab, "max_position_embeddings": 4, "type_vocab_size": 2}
    t = {"embeddings.word_embeddings.weight": rand([vocab, h], rng),
         "embeddings.position_embeddings.weight": rand([4, h], rng),
         "embeddings.token_type_embeddings.weight": rand([2, h], rng),
         "embeddings.LayerNorm.weight": rand([h], rng), "embeddings.LayerNorm.bias": rand([h], rng)}
    p = "encoder.layer.0."
    for name, shape in [("attention.self.query", [h, h]), ("attention.self.key", [h, h]),
                        ("attention.self.value", [h, h]), ("attention.output.dense", [h, h]),
                        ("attention.output.LayerNorm", [h]), ("intermediate.dense", [ff, h]),
                        ("output.dense", [h, ff]), ("output.LayerNorm", [h])]:
        t[p + name + ".weight"] = rand(shape, rng)
        t[p + name + ".bias"] = rand(shape[:1], rng)
    return config, t


def wav_file(tag, channels, rate, bits, frames, rng, extensible=False, extra=b""):
    """A WAV file of `frames` random frames; `extra` is inserted as chunks before the data."""
    width = bits // 8
    data = bytearray()
    for _ in range(frames * channels):
        x = rng.uniform(-0.9, 0.9)
        if tag == 3:
            data += struct.pack("<f" if bits == 32 else "<d", x)
        elif bits == 8:
            data.append(int(128 + 127 * x))
        else:
            data += int(x * (2 ** (bits - 1) - 1)).to_bytes(width, "little", signed=True)
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * channels * width,
                      channels * width, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(data)) + bytes(data) + (b"\0" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def main():
    rng = random.Random(7)
    wav_dir = CORPUS / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    for name, args, kw in [
        ("pcm8", (1, 1, 8000, 8, 301), {}),
        ("pcm16", (1, 1, 16000, 16, 400), {}),
        ("pcm24_stereo", (1, 2, 44100, 24, 300), {"extra": b"LIST\x07\0\0\0INFOabc\0"}),
        ("pcm32", (1, 1, 48000, 32, 200), {}),
        ("float32", (3, 1, 16000, 32, 200), {}),
        ("float64", (3, 1, 22050, 64, 100), {}),
        ("extensible16", (1, 2, 16000, 16, 200), {"extensible": True}),
        ("extensible_float", (3, 1, 16000, 32, 200), {"extensible": True}),
        ("alaw", (6, 1, 8000, 8, 100), {}),
    ]:
        (wav_dir / f"{name}.wav").write_bytes(wav_file(*args, rng, **kw))
    st_dir = CORPUS / "safetensors_config"
    st_dir.mkdir(parents=True, exist_ok=True)
    models = [(t, decoder(t, rng)) for t in ("llama", "qwen2", "qwen3", "phi3", "gemma3_text")]
    for name, (config, tensors) in models + [("bert", bert(rng))]:
        c = json.dumps(config).encode()
        (st_dir / name).write_bytes(struct.pack("<H", len(c)) + c + safetensors(tensors))
    gguf_dir = CORPUS / "gguf"
    gguf_dir.mkdir(parents=True, exist_ok=True)
    # The quantized fixtures only: the f32 one (500 KB) would slow every fuzzing iteration.
    fixtures = sorted((ROOT / "tests/fixtures/tiny-llama-gguf").glob("q*.gguf"))
    for f in fixtures:
        shutil.copy(f, gguf_dir / f.name)
    convert = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target-tools/release/edgelm-convert"
    packed_dir = CORPUS / "packed_header"
    packed_dir.mkdir(parents=True, exist_ok=True)
    if convert.is_file():
        for f in fixtures:
            subprocess.run([convert, f, "-o", packed_dir / f"{f.stem}.edgelm", "-q", "keep"], check=True,
                               stdout=subprocess.DEVNULL)
    else:
        print(f"{convert} is not built: packed_header starts from an empty corpus", file=sys.stderr)
    for d in sorted(CORPUS.iterdir()):
        print(d.relative_to(ROOT), len(list(d.iterdir())), "inputs")


if __name__ == "__main__":
    main()
