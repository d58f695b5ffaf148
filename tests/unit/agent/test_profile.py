"""Issue 12.1 (agent side): the device profile from /proc, sent at enrollment and in every check-in."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

from liteship.agent.profile import MAX_TEXT, device_profile, parse_cpuinfo, parse_meminfo

CPUINFO = Path(__file__).resolve().parents[2] / "data" / "cpuinfo"


def test_profile_of_this_machine_matches_its_proc_files():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo on this OS")
    p = device_profile()
    assert p["machine"] == platform.machine() and p["cores"] == os.cpu_count()
    assert p["python"] == platform.python_version() and p["accelerator"] == "cpu"
    assert p["accelerators"][0] == "cpu" and p["litert"][:1].isdigit() and p["liteship"]
    text = Path("/proc/cpuinfo").read_text()
    flags = (
        next(line for line in text.splitlines() if line.startswith(("flags", "Features")))
        .split(":")[1]
        .split()
    )
    if "flags" in text:  # x86: every reported ISA flag is really in the kernel's list, and avx2 is found
        assert set(p["isa"]) <= set(flags) and ("avx2" in p["isa"]) == ("avx2" in flags)
        assert ("avx512_vnni" in p["isa"]) == ("avx512_vnni" in flags)
        model = next(line for line in text.splitlines() if line.startswith("model name")).split(":", 1)[1]
        assert p["cpu_model"] == " ".join(model.split())
    kb = int(
        next(
            line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
        ).split()[1]
    )
    assert p["memory_mb"] == kb // 1024
    assert all(len(v) <= MAX_TEXT for v in p.values() if isinstance(v, str))
    json.dumps(p)  # a flat JSON object


def test_raspberry_pi_4_cortex_a72_has_neon_and_no_dotprod():
    cpu = parse_cpuinfo((CPUINFO / "raspberry-pi-4.txt").read_text())
    assert cpu == {"cpu_model": "Cortex-A72", "isa": ["neon"], "cores": 4}


def test_raspberry_pi_5_cortex_a76_has_dotprod():
    cpu = parse_cpuinfo((CPUINFO / "raspberry-pi-5.txt").read_text())
    assert cpu["cpu_model"] == "Cortex-A76" and cpu["cores"] == 4
    assert {"neon", "dotprod", "fp16"} <= set(cpu["isa"]) and "i8mm" not in cpu["isa"]


def test_big_little_and_32_bit_arm_and_junk():
    big_little = "\n".join(
        f"processor\t: {i}\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU part\t: {part}\n"
        for i, part in enumerate(["0xd05"] * 4 + ["0xd0b"] * 4)
    )
    assert parse_cpuinfo(big_little)["cpu_model"] == "Cortex-A55 + Cortex-A76"
    armv7 = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nFeatures\t: half thumb neon vfpv4\n"
    assert parse_cpuinfo(armv7) == {"cpu_model": "ARMv7 Processor rev 3 (v7l)", "isa": ["neon"], "cores": 1}
    assert parse_cpuinfo("") == {"cpu_model": None, "isa": [], "cores": None}
    assert parse_cpuinfo("model name\t: " + "x" * 5000)["cpu_model"] == "x" * MAX_TEXT
    assert parse_meminfo("MemTotal:        3884212 kB\n") == 3793 and parse_meminfo("garbage") is None


def test_profile_is_sent_at_enrollment_and_every_check_in(tmp_path, keys):
    from agent_test_helpers import FakeFleet

    from liteship.agent.client import DeviceClient
    from liteship.agent.clock import Clock
    from liteship.agent.service import enroll
    from liteship.agent.store import Store
    from liteship.agent.updater import Updater

    fleet = FakeFleet()
    real = fleet.handle

    def handle(request):
        if request.url.path.endswith("/register"):
            import httpx

            return httpx.Response(201, json={"device_id": "d1", "token": "t0k"})
        return real(request)

    import httpx

    transport = httpx.MockTransport(handle)
    enroll(tmp_path / "s", server="http://fleet.test", enrollment_token="e", device_id="d1",
           key=keys.public_path, transport=transport)  # fmt: skip
    store = Store(tmp_path / "s", keys.public_path)
    client = DeviceClient("http://fleet.test", "d1", "t0k", transport=transport)
    Updater(store, client, Clock(store.root / "clock.json")).poll_once()
    checkins = [json.loads(r.content) for r in fleet.requests if r.url.path.endswith("/checkin")]
    assert len(checkins) == 2
    for body in checkins:
        assert (
            body["runtime"]["machine"] == platform.machine() and body["runtime"]["accelerators"][0] == "cpu"
        )
    assert checkins[0]["runtime"] == checkins[1]["runtime"]
