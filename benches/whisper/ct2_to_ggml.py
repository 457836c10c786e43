"""Converts a Whisper model in faster-whisper's CTranslate2 layout (config.json, tokenizer.json, model.bin) to
whisper.cpp's ggml file, so whisper.cpp runs the very weights edgelm and faster-whisper run. Only the
CTranslate2 weights exist here (no Hugging Face or OpenAI checkpoint), and whisper.cpp's converters
(models/convert-pt-to-ggml.py, convert-h5-to-ggml.py) read only those.

    python benches/whisper/ct2_to_ggml.py CT2_DIR OUT.bin

Writes what convert-pt-to-ggml.py writes (whisper.cpp v1.8.5's loader reads it): the hyperparameters, the
80/128-band mel filters (faster-whisper's get_mel_filters, librosa's Slaney bank as in whisper's
mel_filters.npz), the 50257 byte-level text tokens, then every tensor under OpenAI's names, f16 for matrices
and convolutions, f32 for vectors, convolution biases and positional embeddings. CTranslate2 fuses the
self-attention's Q/K/V and the cross-attention's K/V: they are split back; the key bias CTranslate2 stores
(zero: Whisper's keys have none) is checked and dropped. Needs numpy and faster_whisper (the Whisper venv).
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    """model.bin -> (spec name, {variable: array}) with aliases resolved."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal pos
        (n,) = take("H")
        s = data[pos : pos + n - 1].decode()
        pos += n
        return s

    (version,) = take("I")
    if version != 6:
        sys.exit(f"{path}: CTranslate2 binary version {version}, this reads 6")
    spec = string()
    take("I")  # revision
    (count,) = take("I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        dtype, nbytes = take("BI")
        if dtype not in DTYPES:
            sys.exit(f"{path}: {name} has dtype code {dtype} (bf16?), not converted")
        variables[name] = np.frombuffer(data, DTYPES[dtype], nbytes // np.dtype(DTYPES[dtype]).itemsize, pos).reshape(shape)
        pos += nbytes
    (aliases,) = take("I")
    for _ in range(aliases):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return spec, variables


def bytes_to_unicode():
    """GPT-2's byte <-> printable-character table (as whisper.cpp's converters use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tensors(v, n_enc, n_dec):
    """(whisper.cpp name, array) in the order convert-pt-to-ggml.py writes them."""

    def linear(prefix, src):
        yield prefix + ".weight", v[src + "/weight"]
        yield prefix + ".bias", v[src + "/bias"]

    def norm(prefix, src):
        yield prefix + ".weight", v[src + "/gamma"]
        yield prefix + ".bias", v[src + "/beta"]

    def split(src, parts):
        w, b = v[src + "/weight"], v[src + "/bias"]
        n = w.shape[0] // len(parts)
        for i, name in enumerate(parts):
            yield name + ".weight", w[i * n : (i + 1) * n]
            bias = b[i * n : (i + 1) * n]
            if name.endswith("key"):
                assert not np.any(bias.astype(np.float32)), f"{src}: nonzero key bias"
            else:
                yield name + ".bias", bias

    yield "encoder.positional_embedding", v["encoder/position_encodings/encodings"]
    for i in (1, 2):
        yield f"encoder.conv{i}.weight", v[f"encoder/conv{i}/weight"]
        yield f"encoder.conv{i}.bias", v[f"encoder/conv{i}/bias"].reshape(-1, 1)
    for i in range(n_enc):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from split(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        yield from linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        yield from norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        yield from linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        yield from linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        yield from norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    yield from norm("encoder.ln_post", "encoder/layer_norm")
    yield "decoder.positional_embedding", v["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", v["decoder/embeddings/weight"]
    for i in range(n_dec):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from split(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        yield from linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        yield from norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        yield from linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        yield from split(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
        yield from linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        yield from norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        yield from linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        yield from linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        yield from norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    yield from norm("decoder.ln", "decoder/layer_norm")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ct2, out = Path(sys.argv[1]), Path(sys.argv[2])
    spec, v = read_ct2(ct2 / "model.bin")
    if spec != "WhisperSpec":
        sys.exit(f"{ct2}: spec {spec}, not WhisperSpec")
    n_enc = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    n_dec = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    n_vocab, d = v["decoder/embeddings/weight"].shape
    n_mels = v["encoder/conv1/weight"].shape[1]
    heads_enc, heads_dec = int(v["encoder/num_heads"]), int(v["decoder/num_heads"])
    hparams = [n_vocab, v["encoder/position_encodings/encodings"].shape[0], d, heads_enc, n_enc,
               v["decoder/position_encodings/encodings"].shape[0], d, heads_dec, n_dec, n_mels, 1]

    vocab = json.loads((ct2 / "tokenizer.json").read_text())["model"]["vocab"]
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    text_tokens = sorted((i, t) for t, i in vocab.items() if i < 50257)
    assert [i for i, _ in text_tokens] == list(range(50257)), "tokenizer ids 0..50256 are not all text tokens"

    filters = FeatureExtractor.get_mel_filters(16000, 400, n_mels).astype(np.float32)
    with open(out, "wb") as f:
        f.write(struct.pack("<i", 0x67676D6C))
        f.write(struct.pack("<" + "i" * len(hparams), *hparams))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(text_tokens)))
        for _, t in text_tokens:
            raw = bytes(decoder[c] for c in t)
            f.write(struct.pack("<i", len(raw)) + raw)
        count = 0
        for name, a in tensors(v, n_enc, n_dec):
            a = a.squeeze() if name not in ("encoder.conv1.bias", "encoder.conv2.bias") else a
            f32 = a.ndim < 2 or name in ("encoder.conv1.bias", "encoder.conv2.bias",
                                         "encoder.positional_embedding", "decoder.positional_embedding")
            a = np.ascontiguousarray(a.astype(np.float32 if f32 else np.float16))
            key = name.encode()
            f.write(struct.pack("<iii", a.ndim, len(key), 0 if f32 else 1))
            f.write(struct.pack("<" + "i" * a.ndim, *reversed(a.shape)))
            f.write(key)
            f.write(a.tobytes())
            count += 1
    print(f"{out}: {count} tensors, {len(text_tokens)} tokens, n_vocab {n_vocab}, {n_enc}+{n_dec} layers, {n_mels} mels")


if __name__ == "__main__":
    main()
