"""The device side of packages works in a process where TensorFlow cannot be imported."""

from __future__ import annotations

import json


def test_keygen_build_verify_extract_smoke_without_tensorflow(no_tf_python, tflite_float, tmp_path):
    code = f"""
        import json, sys
        from pathlib import Path
        from liteship.errors import SignatureError
        from liteship.package import build_package, extract_verified, generate_keypair, smoke_test, verify_package
        tmp = Path({str(tmp_path)!r})
        keys = generate_keypair(tmp / "k.key")
        other = generate_keypair(tmp / "o.key")
        info = build_package({str(tflite_float)!r}, tmp, model_id="digits", version="1.0.0",
                             private_key=keys.private_path)
        m = verify_package(info.path, keys.public_path)
        try:
            verify_package(info.path, other.public_path)
            wrong = "accepted"
        except SignatureError as e:
            wrong = str(e)
        extract_verified(info.path, keys.public_path, tmp / "current")
        r = smoke_test(tmp / "current")
        print(json.dumps({{"version": m.version, "wrong": wrong, "smoke": r.ok,
                           "tf": any(k.split(".")[0] in ("tensorflow", "keras") for k in sys.modules)}}))
    """
    proc = no_tf_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["version"] == "1.0.0" and out["smoke"] is True and out["tf"] is False
    assert "signed by key" in out["wrong"]
