"""edgelm: run quantized transformer language models on edge hardware.

>>> import edgelm
>>> model = edgelm.Model("SmolLM2-135M-Instruct.q4.edgelm")
>>> for piece in model.chat([{"role": "user", "content": "Hi!"}], max_tokens=32):
...     print(piece, end="")
"""

from ._edgelm import (
    ContextFullError,
    Error,
    InvalidInputError,
    Model,
    ModelError,
    TemplateError,
    TextStream,
    UnsupportedError,
)

__all__ = [
    "ContextFullError",
    "Error",
    "InvalidInputError",
    "Model",
    "ModelError",
    "TemplateError",
    "TextStream",
    "UnsupportedError",
]
