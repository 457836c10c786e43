"""Type stubs of edgelm's native module."""

from os import PathLike
from typing import Dict, Iterator, List, Optional, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt
from typing_extensions import Unpack

class Error(Exception):
    """Base class of edgelm's errors."""

class ModelError(Error):
    """The model file cannot be read or is not a valid edgelm model."""

class InvalidInputError(Error, ValueError):
    """An argument is out of range or an option is invalid."""

class UnsupportedError(Error):
    """The model cannot do this (generate with an encoder, embed with a decoder)."""

class ContextFullError(Error):
    """The prompt and answer do not fit in the context."""

class TemplateError(Error):
    """The chat template failed to render."""

class Options(TypedDict, total=False):
    """Keyword arguments of `generate` and `chat` (defaults: llama.cpp's, as the command's).
    Out-of-range numbers (NaN, inf, temperature < 0, top_p outside (0, 1], ...) raise
    `InvalidInputError` naming the argument."""

    max_tokens: int  # 256
    temperature: float  # 0.8; 0: greedy
    top_k: int  # 40; 0: off
    top_p: float  # 0.95; 1: off
    min_p: float  # 0.05; 0: off
    repeat_penalty: float  # 1.0: off
    repeat_last_n: int  # 64: tokens the repetition, presence and frequency penalties look at
    presence_penalty: float  # 0: off
    frequency_penalty: float  # 0: off
    dry_multiplier: float  # 0: off
    dry_base: float  # 1.75; at least 1
    dry_allowed_length: int  # 2
    dry_penalty_last_n: int  # 64
    dry_sequence_breakers: Sequence[str]  # "\n", ":", "\"", "*"
    seed: Optional[int]
    stop: Union[None, str, Sequence[str]]
    loop_guard: bool  # False

class TextStream(Iterator[str]):
    """The pieces of text of one generation, as they are produced."""

    def __iter__(self) -> "TextStream": ...
    def __next__(self) -> str: ...
    def close(self) -> None:
        """Stops the generation; the iterator ends."""
    @property
    def stats(self) -> Optional[Dict[str, Union[int, float, str]]]:
        """Counts and timings once the stream is exhausted, else None."""

class Model:
    """A language model or sentence encoder loaded from a packed `.edgelm` file."""

    def __init__(
        self,
        path: Union[str, bytes, "PathLike[str]", "PathLike[bytes]"],
        *,
        context: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> None: ...
    @property
    def architecture(self) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def max_context(self) -> int: ...
    @property
    def embedding_dim(self) -> Optional[int]: ...
    def tokenize(self, text: str, *, add_special: bool = True, special: bool = False) -> List[int]: ...
    def detokenize(self, ids: Sequence[int]) -> str: ...
    def generate(self, prompt: str, *, special: bool = False, **options: Unpack[Options]) -> TextStream: ...
    def chat(self, messages: Sequence[Dict[str, str]], **options: Unpack[Options]) -> TextStream: ...
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
