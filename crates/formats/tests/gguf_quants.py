"""Quantize / dequantize with the `gguf` Python package, as an independent reference for the
formats crate (driven by tests/gguf_python.rs).

usage: gguf_quants.py JOBS_FILE

Each line of JOBS_FILE is `MODE TYPE ROWS INPUT OUTPUT`:
  quantize   TYPE ROWS in.f32 out.bin  -- INPUT holds ROWS equal rows of little-endian f32
  dequantize TYPE ROWS in.bin out.f32  -- INPUT holds ROWS equal rows of TYPE blocks
TYPE is the ggml type name (q4_0, q2_K, bf16, ...). Outputs are raw little-endian bytes.
"""

import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize


def main() -> int:
    with open(sys.argv[1]) as jobs:
        for line in jobs:
            if not line.strip():
                continue
            mode, type_name, rows, src, dst = line.split()
            qtype = GGMLQuantizationType[type_name.upper()]
            rows = int(rows)
            if mode == "quantize":
                data = np.fromfile(src, dtype="<f4").reshape(rows, -1)
                out = quantize(data, qtype)
            elif mode == "dequantize":
                data = np.fromfile(src, dtype=np.uint8).reshape(rows, -1)
                out = dequantize(data, qtype).astype("<f4", copy=False)
            else:
                raise ValueError(f"unknown mode {mode!r}")
            np.ascontiguousarray(out).tofile(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
