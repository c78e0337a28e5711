"""The int8 numbers an artifact stores, as int8 execution takes them: ``{state_dict name: (q int8, scale float32)}``.

Only whole-model int8 codecs have such numbers (:data:`INT8_CODECS`); int8 execution runs them exactly, never
quantizing the weights again.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from compress.quant.codecs import Codec, Encoded

__all__ = ["INT8_CODECS", "int8_weights"]

INT8_CODECS = ("int8", "int8-tensor")   # codecs whose artifacts have an int8 execution path


def int8_weights(codec: Codec | Mapping, encoded: Mapping[str, Encoded], *, source: str = "artifact"
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{state_dict name: (q int8, scale float32)}`` of an artifact's int8 tensors. Raises ValueError naming
    the codecs that have an int8 execution path when ``codec`` is not one of them."""
    codec = codec if isinstance(codec, Codec) else Codec.from_json(codec)
    if codec.label not in INT8_CODECS:
        raise ValueError(f"{source}: codec {codec.label} has no int8 execution path; supported: "
                         f"{', '.join(INT8_CODECS)} (export with --codec int8 --fold-bn)")
    return {name: (enc.arrays["data"].reshape(enc.shape).numpy().astype(np.int8),
                   enc.arrays["scale"].to(torch.float32).numpy())
            for name, enc in encoded.items() if enc.kind == "int8"}
