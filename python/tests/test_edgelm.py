"""The Python package against SmolLM2-135M-Instruct and all-MiniLM-L6-v2."""

import math
import os
import signal
import threading
import time

import numpy as np
import pytest

import edgelm

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_streams_a_greedy_answer(smollm):
    stream = smollm.chat(QUESTION, max_tokens=24, temperature=0)
    pieces = list(stream)
    assert all(isinstance(p, str) for p in pieces) and len(pieces) > 1
    assert "Paris" in "".join(pieces)
    stats = stream.stats
    assert stats["generated_tokens"] <= 24 and stats["prompt_tokens"] > 10
    assert stats["stop"] in ("EndOfTurn", "MaxTokens")


def test_generate_raw_prompt_and_seeds(smollm):
    assert "".join(smollm.generate("The capital of France is", max_tokens=8, temperature=0)).strip()
    a = "".join(smollm.generate("Once upon a time", max_tokens=16, seed=7))
    b = "".join(smollm.generate("Once upon a time", max_tokens=16, seed=7))
    assert a == b


def test_stop_strings_are_not_shown(smollm):
    text = "".join(smollm.chat(QUESTION, max_tokens=24, temperature=0, stop=["Paris"]))
    assert "Paris" not in text


def test_one_stop_string_is_not_a_list_of_characters(smollm):
    whole = "".join(smollm.chat(QUESTION, max_tokens=24, temperature=0))
    assert "Paris" in whole
    text = "".join(smollm.chat(QUESTION, max_tokens=24, temperature=0, stop="Paris"))
    assert text == whole.split("Paris")[0]


def test_stopping_early_then_generating_again(smollm):
    stream = smollm.chat(QUESTION, max_tokens=200, temperature=0)
    first = [next(stream) for _ in range(3)]
    assert len(first) == 3
    stream.close()
    assert len(list(stream)) < 200
    for i, _ in enumerate(smollm.generate("Count to one hundred:", max_tokens=200)):
        if i == 2:
            break  # the abandoned stream stops its generation when collected
    assert "Paris" in "".join(smollm.chat(QUESTION, max_tokens=24, temperature=0))


def test_two_threads_at_once(smollm):
    results = [None, None]

    def ask(i):
        results[i] = "".join(smollm.chat(QUESTION, max_tokens=24, temperature=0))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] and "Paris" in results[0]


def test_tokenize_round_trip(smollm):
    text = "Hello world, héllo 世界 🙂"
    ids = smollm.tokenize(text, add_special=False)
    assert all(isinstance(i, int) for i in ids)
    assert smollm.detokenize(ids) == text
    assert smollm.tokenize("Hello world", add_special=False) == smollm.tokenize("Hello world")[-2:]


def test_special_token_text_is_plain_by_default(smollm):
    assert len(smollm.tokenize("<|im_end|>", add_special=False)) > 1
    assert len(smollm.tokenize("<|im_end|>", add_special=False, special=True)) == 1
    plain = smollm.chat([{"role": "user", "content": "hi"}], max_tokens=0)
    assert list(plain) == []


def test_bad_text_and_ids(smollm):
    with pytest.raises(UnicodeEncodeError):
        smollm.tokenize("lone surrogate \ud800")
    with pytest.raises(edgelm.InvalidInputError, match="outside the vocabulary"):
        smollm.detokenize([smollm.vocab_size])
    with pytest.raises(OverflowError):
        smollm.detokenize([-1])
    # A token that is half of a UTF-8 character decodes to U+FFFD, not an exception.
    half = smollm.tokenize("🙂", add_special=False)[:1]
    assert isinstance(smollm.detokenize(half), str)


def test_bad_messages_and_settings(smollm):
    with pytest.raises(edgelm.InvalidInputError, match="content"):
        smollm.chat([{"role": "user"}])
    with pytest.raises(TypeError):
        smollm.chat(["not a dict"])
    bad = [("temperature", -1.0), ("temperature", math.nan), ("temperature", math.inf), ("temperature", 1e39),
           ("top_p", 0.0), ("top_p", 1.5), ("min_p", -0.1), ("repeat_penalty", 0.0), ("presence_penalty", math.nan),
           ("frequency_penalty", -math.inf), ("dry_multiplier", -1.0), ("dry_base", 0.5), ("max_tokens", 10**30),
           ("stop", ""), ("stop", ["Paris", ""])]
    for name, value in bad:
        for call in (lambda **kw: smollm.generate("hi", **kw), lambda **kw: smollm.chat(QUESTION, **kw)):
            with pytest.raises(ValueError, match=f"^{name}[ :]") as e:
                call(**{name: value})
            assert isinstance(e.value, edgelm.InvalidInputError) and isinstance(e.value, edgelm.Error)
    with pytest.raises(ValueError, match="not a finite number"):
        smollm.generate("hi", temperature=1e39)
    with pytest.raises(TypeError, match="temprature"):
        smollm.generate("hi", temprature=0.5)
    with pytest.raises(TypeError, match="max_tokens"):
        smollm.generate("hi", max_tokens="many")


def test_penalties_and_dry_change_the_answer(smollm):
    def answer(**kw):
        return "".join(smollm.generate("One, two, one, two, one, two,", max_tokens=24, temperature=0, **kw))

    plain = answer()
    assert answer(presence_penalty=1.5) != plain
    assert answer(frequency_penalty=1.5) != plain
    assert answer(dry_multiplier=2.0, dry_allowed_length=1, dry_sequence_breakers=[]) != plain
    assert answer(seed=None, stop=None, repeat_last_n=0, presence_penalty=1.5) == plain


def test_context_out_of_range_is_refused_at_open():
    for context in (0, 10**9):
        with pytest.raises(ValueError, match=f"context {context}: must be between 1 and"):
            edgelm.Model(os.environ["EDGELM_SMOLLM"], context=context)


def test_context_full(smollm):
    with pytest.raises(edgelm.ContextFullError, match=r"context is full: \d+ tokens needed, the context holds \d+"):
        list(smollm.generate("word " * 600, max_tokens=4))


def test_bad_paths(tmp_path):
    with pytest.raises(edgelm.ModelError, match="missing.edgelm") as e:
        edgelm.Model(tmp_path / "missing.edgelm")
    assert isinstance(e.value, edgelm.Error)
    not_a_model = tmp_path / "text.edgelm"
    not_a_model.write_bytes(b"hello, not a model" * 10)
    with pytest.raises(edgelm.ModelError, match="not an edgelm packed file"):
        edgelm.Model(not_a_model)
    with pytest.raises(edgelm.ModelError, match="folder"):
        edgelm.Model(tmp_path)
    # Paths as bytes, as `open` takes them.
    with pytest.raises(edgelm.ModelError, match="not an edgelm packed file"):
        edgelm.Model(os.fsencode(not_a_model))
    with pytest.raises(TypeError, match="int"):
        edgelm.Model(5)


def test_embed(minilm):
    assert minilm.embedding_dim == 384 and minilm.architecture == "bert"
    v = minilm.embed(["A cat sits on the mat.", "A kitten is on the rug.", "Stock markets fell today."])
    assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert minilm.embed([]).shape == (0, 384)


def test_model_kinds_are_checked(smollm, minilm):
    assert smollm.embedding_dim is None
    with pytest.raises(edgelm.UnsupportedError):
        smollm.embed(["hi"])
    with pytest.raises(edgelm.UnsupportedError):
        minilm.generate("hi")


def test_wheel_is_installed_not_the_source_tree():
    assert os.path.join("python", "edgelm") not in edgelm.__file__


def test_gil_is_released_while_computing(minilm):
    """The main thread keeps running while another thread embeds: no long gap between its ticks."""
    texts = ["A sentence of moderate length to keep the encoder busy for a while."] * 400
    done = threading.Event()
    elapsed = []

    def work():
        start = time.perf_counter()
        minilm.embed(texts)
        elapsed.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=work)
    last, longest = time.perf_counter(), 0.0
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    assert longest < elapsed[0] / 2, (longest, elapsed[0])


def test_ctrl_c_during_a_long_prompt_is_not_held_up():
    """Waiting for the first piece, the stream still handles signals: Ctrl-C raises at once."""
    model = edgelm.Model(os.environ["EDGELM_SMOLLM"], context=4096, threads=1)
    prompt = " ".join(f"w{i}" for i in range(200))
    full = model.generate(prompt, max_tokens=1)
    list(full)
    prefill = full.stats["prompt_seconds"]
    assert prefill > 0.5, prefill  # long enough to tell "at once" from "after the prompt"
    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        next(model.generate("x " + prompt, max_tokens=1))
    waited = time.perf_counter() - start
    timer.join()
    assert waited < 0.1 + prefill / 2, (waited, prefill)


def test_closing_during_a_long_prompt_stops_the_prompt():
    """close() stops the background prompt within one batch, not after the whole prompt."""
    model = edgelm.Model(os.environ["EDGELM_SMOLLM"], context=4096, threads=1)
    prompt = " ".join(f"w{i}" for i in range(1000))
    n = len(model.tokenize(prompt))
    assert n > 2000, n  # several batches
    stream = model.generate(prompt, max_tokens=1)
    stream.close()
    assert list(stream) == []
    stats = stream.stats
    assert stats["stop"] == "Cancelled" and stats["prompt_tokens"] < n, (stats, n)
