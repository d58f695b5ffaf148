"""Would content-defined chunking save bytes between model versions? (issue 24.5, the optional part)

Measures, on real models from tests/data/third_party, how many bytes a device would download for a new
version if both versions were cut into content-defined chunks (a gear rolling hash with normalized
chunking, FastCDC-like: own implementation below) and the device fetched only the chunks it does not
already hold — against downloading the whole new file (as is, and gzip-compressed for comparison), and
against fixed-size blocks of the same mean size (which lose every block after an insertion).

Version pairs (each a plausible next release of the same model):

- **metadata edit**: the same weights, new ``LITESHIP`` metadata (version, labels, normalization) — the
  model re-serialized by liteship's packer, as ``liteship metadata`` / the pipeline do;
- **head fine-tune**: the weights of the last op with constant float weights (the classifier head)
  nudged by 1 % noise, every other byte as before (a converter re-emits an unchanged graph with the
  same layout);
- **full re-train**: every float32 constant buffer nudged (a whole-network fine-tune or re-train);
- **re-quantize**: MobileNetV1 0.25 float32 → its uint8 build (a new recipe for the same model);
- **package (.lsp)**: signed liteship packages of the same model, the manifest's version bumped (the
  archive stores members uncompressed), and of the head fine-tune.

The delta cost counts the new version's chunk list (32-byte hash + 4-byte length per chunk) the device
would need first. Chunk sizes: min 2 KiB, mean 8 KiB, max 64 KiB unless ``--avg`` says otherwise.

    PYTHONPATH=src .venv/bin/python benchmarks/variant_deltas.py [--avg 8192] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tests" / "data" / "third_party"
FLOAT_MODELS = {
    "mobilenet_v1_0.25 f32": MODELS / "mobilenet_v1_0.25_224_1_metadata_1.tflite",
    "hand_landmark f32": MODELS / "hand_landmark_224_float.tflite",
    "pose_detection f32": MODELS / "pose_detection_128_float.tflite",
    "blazeface f32": MODELS / "blazeface_face_detection_front_128_float.tflite",
}
QUANT = MODELS / "mobilenet_v1_0.25_224_quant.tflite"
INDEX_BYTES_PER_CHUNK = 36  # sha256 + a 4-byte length


# ---- the chunker: gear rolling hash, normalized chunking (FastCDC, Xia et al. 2016) ---------------


def _gear_table() -> list[int]:
    """256 pseudo-random 64-bit values, fixed (sha256 of the byte), so chunk edges are reproducible."""
    return [int.from_bytes(hashlib.sha256(bytes([i])).digest()[:8], "little") for i in range(256)]


GEAR = _gear_table()
MASK64 = (1 << 64) - 1


def _mask(bits: int) -> int:
    """A mask of ``bits`` one-bits spread over the high half of the hash (the gear hash's best bits)."""
    positions = np.linspace(63, 16, bits).astype(int)
    return sum(1 << int(p) for p in positions)


def chunks(data: bytes, *, avg: int = 8192, min_size: int = 2048, max_size: int = 65536) -> Iterator[bytes]:
    """Cut ``data`` at content-defined edges: a stricter mask before ``avg`` bytes, a looser one after
    (normalized chunking, level 2), never below ``min_size`` or above ``max_size`` bytes."""
    bits = max(1, avg.bit_length() - 1)
    strict, loose = _mask(bits + 2), _mask(bits - 2)
    n, start = len(data), 0
    gear = GEAR
    while start < n:
        end = min(n, start + max_size)
        if end - start <= min_size:
            yield data[start:end]
            return
        h, i, cut = 0, start + min_size, end
        normal = min(end, start + avg)
        while i < normal:
            h = ((h << 1) + gear[data[i]]) & MASK64
            if not h & strict:
                cut = i + 1
                break
            i += 1
        else:
            while i < end:
                h = ((h << 1) + gear[data[i]]) & MASK64
                if not h & loose:
                    cut = i + 1
                    break
                i += 1
        yield data[start:cut]
        start = cut


def fixed_blocks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def delta_bytes(old: bytes, new: bytes, cut: Callable[[bytes], Iterator[bytes]]) -> dict[str, int]:
    """What a device holding ``old`` fetches for ``new``: the chunks it lacks, plus the chunk list."""
    have = {hashlib.sha256(c).digest() for c in cut(old)}
    pieces = list(cut(new))
    missing, seen = 0, set()
    for c in pieces:
        h = hashlib.sha256(c).digest()
        if h not in have and h not in seen:
            missing += len(c)
        seen.add(h)
    index = INDEX_BYTES_PER_CHUNK * len(pieces)
    return {"chunks": len(pieces), "missing": missing, "index": index, "total": missing + index}


# ---- version pairs --------------------------------------------------------------------------------


def _float_buffers(data: bytes) -> list[tuple[int, int, int]]:
    """``(op position, file offset, length)`` of the float32 constant weights of each op, in op order
    (subgraph 0); the offset is found by the buffer's bytes (unique for weight tensors)."""
    from liteship.model.flatbuffer import buffer_bytes, load_model, schema

    loaded = load_model(data)
    model = loaded.model
    sg = model.subgraphs[0]
    out, seen = [], set()
    for pos, op in enumerate(sg.operators):
        for t in op.inputs if op.inputs is not None else []:
            if t < 0:
                continue
            tensor = sg.tensors[t]
            if tensor.type != schema.TensorType.FLOAT32 or tensor.buffer in seen:
                continue
            raw = buffer_bytes(model, tensor.buffer, data)
            if len(raw) < 256:
                continue
            offset = data.find(raw)
            if offset >= 0:
                seen.add(tensor.buffer)
                out.append((pos, offset, len(raw)))
    return out


def _nudge(data: bytes, regions: list[tuple[int, int, int]], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for _, offset, length in regions:
        w = np.frombuffer(data, dtype="<f4", count=length // 4, offset=offset)
        out[offset : offset + length] = (
            (w * (1 + 0.01 * rng.standard_normal(w.shape))).astype("<f4").tobytes()
        )
    return bytes(out)


def model_pairs() -> Iterator[tuple[str, str, bytes, bytes]]:
    from liteship.model.flatbuffer import write_liteship_info

    for name, path in FLOAT_MODELS.items():
        base = write_liteship_info(path.read_bytes(), {"version": "1.0.0", "labels": ["a", "b"]})
        edit = write_liteship_info(
            base,
            {"version": "1.1.0", "labels": ["a", "b", "c"], "normalization": {"mean": 127.5, "std": 127.5}},
        )
        yield name, "metadata edit", base, edit
        weights = _float_buffers(base)
        last = max(pos for pos, _, _ in weights)
        head = [w for w in weights if w[0] == last]
        yield (
            name,
            f"head fine-tune ({sum(w[2] for w in head) / len(base):.1%} of the file)",
            base,
            _nudge(base, head, 1),
        )
        yield name, "full re-train", base, _nudge(base, weights, 2)
    yield (
        "mobilenet_v1_0.25",
        "re-quantize f32 → uint8",
        FLOAT_MODELS["mobilenet_v1_0.25 f32"].read_bytes(),
        QUANT.read_bytes(),
    )


def package_pairs(work: Path) -> Iterator[tuple[str, str, bytes, bytes]]:
    from liteship.package import build_package, generate_keypair

    keys = generate_keypair(work / "bench.key")

    def package(model: bytes, version: str) -> bytes:
        info = build_package(
            model,
            work / f"pkg-{version}",
            model_id="mobilenet",
            version=version,
            private_key=keys.private_path,
            created="2026-01-01T00:00:00Z",
        )
        return Path(info.path).read_bytes()

    float_model = FLOAT_MODELS["mobilenet_v1_0.25 f32"].read_bytes()
    v1 = package(float_model, "1.0.0")
    yield "mobilenet .lsp f32", "version bump, same model", v1, package(float_model, "1.0.1")
    head = _float_buffers(float_model)
    last = max(pos for pos, _, _ in head)
    tuned = _nudge(float_model, [w for w in head if w[0] == last], 1)
    yield "mobilenet .lsp f32", "head fine-tune", v1, package(tuned, "1.1.0")


# ---- report ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avg", type=int, default=8192, help="Mean chunk size in bytes (a power of two).")
    ap.add_argument("--json", action="store_true", help="Print the rows as JSON.")
    args = ap.parse_args()
    if args.avg < 1024 or args.avg & (args.avg - 1):
        sys.exit(f"--avg must be a power of two ≥ 1024, got {args.avg}")
    lo, hi = args.avg // 4, args.avg * 8

    def cdc(b: bytes) -> Iterator[bytes]:
        return chunks(b, avg=args.avg, min_size=lo, max_size=hi)

    def fixed(b: bytes) -> Iterator[bytes]:
        return fixed_blocks(b, args.avg)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [*model_pairs(), *package_pairs(Path(tmp))]
        for model, change, old, new in pairs:
            t0 = time.perf_counter()
            c = delta_bytes(old, new, cdc)
            seconds = time.perf_counter() - t0
            f = delta_bytes(old, new, fixed)
            rows.append(
                {
                    "model": model,
                    "change": change,
                    "whole_bytes": len(new),
                    "cdc_bytes": c["total"],
                    "cdc_saved": 1 - c["total"] / len(new),
                    "cdc_chunks": c["chunks"],
                    "fixed_bytes": f["total"],
                    "fixed_saved": 1 - f["total"] / len(new),
                    "gzip_bytes": len(zlib.compress(new, 6)),
                    "chunking_s": round(seconds, 2),
                }
            )
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "avg": args.avg, "rows": rows}, indent=2))
        return
    print(f"CPU: {cpu_model()}; chunks: min {lo}, mean {args.avg}, max {hi} bytes")
    print(
        "| model | new version | whole download | CDC delta | saved | fixed blocks | saved | whole, gzip -6 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['change']} | {r['whole_bytes']:,} | {r['cdc_bytes']:,} | {r['cdc_saved']:.0%} "
            f"| {r['fixed_bytes']:,} | {r['fixed_saved']:.0%} | {r['gzip_bytes']:,} |"
        )


if __name__ == "__main__":
    main()
