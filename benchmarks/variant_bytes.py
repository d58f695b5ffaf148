"""Bytes per device per release, before and after release variants (issue 24.5).

Starts a real fleet server on loopback and a mixed fleet of in-process agents (the real
``liteship.agent`` updater: TUF, download, verify, smoke test, install), half reporting a Pi 4 profile
(no dotprod) and half a Pi 5 profile (dotprod), through ``$LITESHIP_AGENT_PROFILE``. Real models:
MobileNetV1 0.25 float32 (1.9 MB) and its uint8 twin (0.5 MB), from tests/data/third_party.

- **before**: one package per release (float32, the build every device can run) → every device
  downloads it;
- **after**: the same release with two variants (float32 default, uint8 for dotprod) → each device
  downloads its own;
- **rollback**: a rollout of the next version halted by the operator (abort): its devices go back to
  their kept slot of the previous version, downloading nothing.

Bytes are what the server recorded from the devices' ``downloaded`` events (bytes over the network).

    .venv/bin/python benchmarks/variant_bytes.py --devices 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tests" / "data" / "third_party"
FLOAT = MODELS / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
QUANT = MODELS / "mobilenet_v1_0.25_224_quant.tflite"
ADMIN, ENROLL = "admin-token-for-bench-0123456789", "enroll-token-for-bench-0123456789"
SERVER = """
import sys, uvicorn
from liteship.fleet.app import create_app
from liteship.fleet.settings import Settings
s = Settings(data_dir=sys.argv[1], admin_token={a!r}, enrollment_token={e!r}, trusted_keys=[sys.argv[2]])
uvicorn.run(create_app(s), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
"""
PI4 = {"machine": "aarch64", "isa": ["neon"]}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=4, help="Devices (half Pi 4, half Pi 5 profiles).")
    args = ap.parse_args()
    from liteship.agent.client import DeviceClient
    from liteship.agent.clock import Clock
    from liteship.agent.profile import PROFILE_ENV
    from liteship.agent.service import enroll
    from liteship.agent.store import Store
    from liteship.agent.updater import Updater
    from liteship.package import Variant, build_package, generate_keypair, parse_when

    tmp = Path(tempfile.mkdtemp(prefix="liteship-variant-bytes-"))
    keys = generate_keypair(tmp / "pub.key")
    fgold = np.random.default_rng(1).random((1, 224, 224, 3), dtype=np.float32)
    qgold = np.random.default_rng(1).integers(0, 255, (1, 224, 224, 3), dtype=np.uint8)
    float_v, int8_v = (
        Variant("float", default=True),
        Variant("uint8-dotprod", when=(parse_when("isa=dotprod"),)),
    )

    def pkg(model_id: str, version: str, variant: Variant | None, quant: bool = False) -> Path:
        return Path(
            build_package(
                QUANT if quant else FLOAT,
                tmp / "lsp" / model_id,
                model_id=model_id,
                version=version,
                private_key=keys.private_path,
                golden_inputs=qgold if quant else fgold,
                variant=variant,
            ).path
        )

    port = 18700 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(SERVER.format(a=ADMIN, e=ENROLL)),
            str(tmp / "fleet"),
            keys.public_path,
            str(port),
        ]
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)

        def publish(path: Path, **params: str) -> None:
            r = httpx.post(
                f"{url}/api/v1/releases", content=path.read_bytes(), headers=admin, params=params, timeout=60
            )
            r.raise_for_status()

        def fleet(model_id: str) -> list[Updater]:
            out = []
            for i in range(args.devices):
                profile = PI4 if i % 2 == 0 else PI5
                state = tmp / "devices" / f"{model_id}-{i}"
                os.environ[PROFILE_ENV] = json.dumps(profile)
                enroll(
                    state,
                    server=url,
                    enrollment_token=ENROLL,
                    device_id=f"{model_id}-{i}",
                    key=keys.public_path,
                    model_id=model_id,
                )
                dev = json.loads((state / "device.json").read_text())
                u = Updater(
                    Store(state, keys.public_path),
                    DeviceClient(url, dev["device_id"], dev["token"]),
                    Clock(state / "clock.json"),
                )
                _ = u.profile  # read now, with this device's profile
                out.append(u)
            os.environ.pop(PROFILE_ENV, None)
            return out

        def poll(updaters: list[Updater]) -> list[str]:
            actions = []
            for u in updaters:
                actions.append(u.poll_once()["action"])
                u.store.commit()
                u.report()  # the check-in that carries the downloaded event
            return actions

        def per_device(model_id: str, version: str) -> dict[str, int]:
            rows = httpx.get(f"{url}/api/v1/models/{model_id}/downloads", headers=admin).json()
            total = sum(r["bytes"] for r in rows if r["version"] == version)
            return {"bytes": total, "per_device": round(total / args.devices)}

        results = {}
        publish(pkg("before", "1.0.0", None))
        poll(fleet("before"))
        results["before (one float32 package)"] = per_device("before", "1.0.0")

        publish(pkg("after", "1.0.0", float_v))
        publish(pkg("after", "1.0.0", int8_v, quant=True))
        devices = fleet("after")
        poll(devices)
        results["after (float32 + uint8-dotprod variants)"] = per_device("after", "1.0.0")

        # rollback: 1.1.0 rolled to everyone, then aborted: back to the kept 1.0.0 slots
        publish(pkg("after", "1.1.0", float_v))
        publish(pkg("after", "1.1.0", int8_v, quant=True))
        r = httpx.post(
            f"{url}/api/v1/rollouts",
            headers=admin,
            json={"model_id": "after", "candidate_version": "1.1.0", "stages": [100]},
        )
        r.raise_for_status()
        poll(devices)
        httpx.post(f"{url}/api/v1/rollouts/{r.json()['id']}/abort", headers=admin).raise_for_status()
        before_abort = per_device("after", "1.0.0")
        actions = poll(devices)
        results["rollback to the kept 1.0.0 after an abort"] = {
            "bytes": per_device("after", "1.0.0")["bytes"] - before_abort["bytes"],
            "actions": sorted(set(actions)),
        }
        sizes = {p.name: p.stat().st_size for p in sorted((tmp / "lsp").rglob("*.lsp"))}
        print(json.dumps({"devices": args.devices, "results": results, "package_sizes": sizes}, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
