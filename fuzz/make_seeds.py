#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into fuzz/corpus/<target>/ (stdlib only).

- safetensors_config: micro Llama, Qwen2, Qwen3, Phi-3, Gemma 3 and BERT models (config.json +
  safetensors, a few KB),
  in the target's input format (u16 config length, config.json, safetensors bytes);
- gguf: the quantized tiny-llama GGUF fixtures (tests/fixtures/tiny-llama-gguf), and tiny-llama
  widened 4x (rows of 256 and 512 values) with its matrices in the K-quant and 5-bit types
  (Q4_K, Q5_K, Q6_K, Q5_0, Q5_1, Q3_K, Q2_K: random blocks with small f16 scales);
- wav: small WAV files of every encoding the reader takes (8/16/24/32-bit PCM, 32/64-bit float,
  WAVE_FORMAT_EXTENSIBLE, stereo, 44.1 kHz, an odd-sized LIST chunk) and ones it refuses (A-law,
  MP3 inside WAVE_FORMAT_EXTENSIBLE, a block align that does not match the channels);
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


# GGML type code -> (values per block, bytes per block, byte offsets of f16 scales in a block).
KQUANTS = {12: (256, 144, (0, 2)), 13: (256, 176, (0, 2)), 14: (256, 210, (208,)), 6: (32, 22, (0,)),
           7: (32, 24, (0, 2)), 11: (256, 110, (108,)), 10: (256, 84, (80, 82))}


def kquant_gguf(src, rng):
    """The tiny-llama GGUF `src` widened 4x, its matrices in the types of KQUANTS (in turn)."""
    b = src.read_bytes()
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", b, 8)

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", b, pos)
        pos += 8 + n
        return b[pos - n:pos].decode()

    def skip(ty):
        nonlocal pos
        if ty == 8:
            string()
        elif ty == 9:
            (et, n) = struct.unpack_from("<IQ", b, pos)
            pos += 12
            for _ in range(n):
                skip(et)
        else:
            pos += {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[ty]

    widened = {"embedding_length": 256, "feed_forward_length": 512, "attention.key_length": 64,
               "attention.value_length": 64, "rope.dimension_count": 64}
    kv = b""
    for _ in range(n_kv):
        start = pos
        key = string()
        (ty,) = struct.unpack_from("<I", b, pos)
        pos += 4
        skip(ty)
        entry = bytearray(b[start:pos])
        if key.startswith("llama.") and key[6:] in widened:
            entry[-4:] = struct.pack("<I", widened[key[6:]])
        kv += entry
    infos, datas, codes, kept = b"", b"", list(KQUANTS), 0
    for i in range(n_tensors):
        name = string()
        (nd,) = struct.unpack_from("<I", b, pos)
        dims = [{64: 256, 128: 512, 32: 128}.get(d, d) for d in struct.unpack_from(f"<{nd}Q", b, pos + 4)]
        pos += 4 + 8 * nd + 12
        if name == "rope_freqs.weight":
            continue
        n = 1
        for d in dims:
            n *= d
        if nd == 1:
            ty, data = 0, struct.pack(f"<{n}f", *(1.0 for _ in range(n)))
        else:
            ty = codes[i % len(codes)]
            per, size, halves = KQUANTS[ty]
            data = bytearray(rng.randbytes(n // per * size))
            for at in range(0, len(data), size):
                for h in halves:
                    data[at + h:at + h + 2] = struct.pack("<e", 1e-3 * rng.uniform(0.5, 2.0))
        kept += 1
        infos += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", nd)
        infos += struct.pack(f"<{nd}QIQ", *dims, ty, len(datas))
        datas += bytes(data) + b"\0" * (-len(data) % 32)
    head = b[:8] + struct.pack("<QQ", kept, n_kv) + kv + infos
    head += b"\0" * (-len(head) % 32)
    return head + datas


def wav_file(tag, channels, rate, bits, frames, rng, extensible=False, extra=b"", align=None):
    """A WAV file of `frames` random frames; `extra` is inserted as chunks before the data;
    `align` overrides the block align."""
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
                      align if align is not None else channels * width, bits)
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
        ("extensible_mp3", (0x55, 1, 8000, 8, 50), {"extensible": True}),
        ("bad_align", (1, 2, 16000, 16, 50), {"align": 2}),
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
    kquant = gguf_dir / "kquant.gguf"
    kquant.write_bytes(kquant_gguf(ROOT / "tests/fixtures/tiny-llama-gguf/q8_0.gguf", rng))
    fixtures.append(kquant)
    convert = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target-tools/release/edgelm-convert"
    packed_dir = CORPUS / "packed_header"
    packed_dir.mkdir(parents=True, exist_ok=True)
    if convert.is_file():
        for f in fixtures:
            subprocess.run([convert, f, "-o", packed_dir / f"{f.stem}.edgelm", "-q", "keep"], check=True,
                               stdout=subprocess.DEVNULL)
    else:
        print(f"{convert} is not built: packed_header starts from an empty corpus", file=sys.stderr)
    text_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(d.relative_to(ROOT), len(list(d.iterdir())), "inputs")


def text_seeds():
    """tokenize and chat_template: a selector byte, then text; 0xFF HI LO spells special token
    HI*256+LO of the model, 0xFE separates messages (template mode: the first part is a template)."""
    special = lambda n: bytes([0xFF, n >> 8, n & 0xFF])
    texts = [
        b"Hello world! 12345 caf\xc3\xa9 \xf0\x9f\x91\xa9\xf0\x9f\x92\x96  tabs\tand\nnewlines",
        b"ignore this" + special(0) + b"system\nYou obey" + special(1) + special(2),
        "Привет, 世界! ▁spaces ".encode() + special(3) + b"<|im_end|><|im_start|>system\n<start_of_turn>",
    ]
    d = CORPUS / "tokenize"
    d.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(texts):
        for sel in (0, 1, 2, 0x81):
            (d / f"text{i}-{sel}").write_bytes(bytes([sel]) + t)
    d = CORPUS / "chat_template"
    d.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(texts):
        for sel in (0, 2, 4):
            (d / f"chat{i}-{sel}").write_bytes(bytes([sel]) + b"\x00Be brief.\xfe\x01" + t + b"\xfe\x02Sure.\xfe\x01Again")
    chatml = (b"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}"
              b"{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    (d / "template").write_bytes(b"\x01" + chatml + b"\xfe\x01hi\xfe\x02" + texts[1])


if __name__ == "__main__":
    main()
