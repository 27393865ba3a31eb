"""Checks ONNX files written by tensile's tests with the real tools.

For each `<case>.json` in the folder given: `onnx.checker.check_model(full_check=True)` on the
model, then onnxruntime (CPU, 2 threads) on the recorded inputs, compared with tensile's eager
outputs. Prints one line per case and exits non-zero when any case fails.

    python3 tests/onnx/check_onnx.py <folder>
"""

import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32}


def load(folder, entry):
    return np.fromfile(folder / entry["file"], dtype=DTYPES[entry["dtype"]]).reshape(entry["dims"])


def main(folder):
    folder = pathlib.Path(folder)
    failed = 0
    for meta_path in sorted(folder.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        model_path = folder / meta["model"]
        model = onnx.load(str(model_path))
        onnx.checker.check_model(model, full_check=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        feeds = {e["name"]: load(folder, e) for e in meta["inputs"]}
        got = session.run([e["name"] for e in meta["outputs"]], feeds)
        worst = 0.0
        for e, g in zip(meta["outputs"], got):
            want = load(folder, e)
            if g.shape != want.shape:
                print(f"{meta_path.stem}: output {e['name']} has shape {g.shape}, expected {want.shape}")
                failed += 1
                continue
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - want.astype(np.float64)) / (1.0 + np.abs(want)))))
        ok = worst <= meta["tolerance"]
        failed += not ok
        print(f"{meta_path.stem}: checker ok, onnxruntime vs tensile max error {worst:.2e} ({'ok' if ok else 'FAILED'})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1])
