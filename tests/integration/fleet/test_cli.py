"""`liteship serve` and `liteship fleet …` through the real console script, over HTTP on loopback."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port


class Served:
    def __init__(self, url: str, port: int, banner: str, tokens: dict[str, str], data: Path) -> None:
        self.url, self.port, self.banner, self.tokens, self.data = url, port, banner, tokens, data


@pytest.fixture(scope="module")
def served(tmp_path_factory, keys):
    """`liteship serve` in a subprocess with no token configured (SQLite, --data in tmp); the tests read
    the generated tokens from its start-up banner. Shared by this module's tests; stopped with SIGTERM."""
    tmp_path = tmp_path_factory.mktemp("served")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITESHIP_")}
    exe = Path(sys.executable).parent / "liteship"
    data = tmp_path / "data"
    cmd = [str(exe), "serve", "--data", str(data), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--trusted-key", keys["good"].public_path],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    while not lines or lines[-1] != "stop with Ctrl+C.":
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"serve ended before its banner: {''.join(lines)}")
        lines.append(line.rstrip("\n"))
    banner = "\n".join(lines)
    tokens = {}
    for line in lines:
        for label in ("admin token", "enrollment token"):
            if line.strip().startswith(label):
                tokens[label.split()[0]] = line.split()[2]
    url = f"http://127.0.0.1:{port}"
    # the banner comes after the bind: the server answers at once
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    yield Served(url, port, banner, tokens, data)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    rest = proc.stdout.read()
    assert "Warning" not in banner + rest and "Traceback" not in rest, rest
    assert (data / "fleet.db").exists()


def test_serve_generates_tokens_and_explains_itself(served):
    b, url = served.banner, served.url
    assert b.startswith(f"liteship fleet server listening on {url}\n")
    assert f"dashboard         {url}/dashboard" in b
    secrets_file = served.data / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = json.loads(secrets_file.read_text())
    assert served.tokens == {"admin": stored["admin_token"], "enrollment": stored["enrollment_token"]}
    assert len(stored["admin_token"]) >= 32 and stored["admin_token"] != stored["enrollment_token"]
    assert "changethis" not in b
    tuf_root = served.data.resolve() / "tuf" / "metadata" / "1.root.json"
    assert f"TUF root          {tuf_root}" in b and tuf_root.exists()
    assert f"liteship fleet publish MODEL.lsp --server {url} --token {stored['admin_token']}" in b
    assert f"liteship agent enroll --server {url} --enrollment-token {stored['enrollment_token']} " in b
    # the tokens work: admin for the API, enrollment for devices; the old default does not
    admin = {"Authorization": f"Bearer {stored['admin_token']}"}
    assert httpx.get(url + "/api/v1/devices", headers=admin).status_code == 200
    assert (
        httpx.get(url + "/api/v1/devices", headers={"Authorization": "Bearer changethis"}).status_code == 401
    )


def test_fleet_commands(served, cli, make_package, tmp_path):
    env = {"LITESHIP_SERVER": served.url, "LITESHIP_TOKEN": served.tokens["admin"]}
    r = cli("fleet", "publish", str(make_package("digits", "1.0.0")), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["channels"] == ["stable"]
    # --server/--token are accepted after the sub-command too (no environment here)
    conn = ["--server", served.url, "--token", served.tokens["admin"]]
    r = cli("fleet", "publish", str(make_package("digits", "1.1.0")), *conn, env={"LITESHIP_TOKEN": ""})
    assert r.returncode == 0 and "published digits 1.1.0" in r.stdout, r.stderr
    r = cli("fleet", "publish", str(make_package("digits", "1.0.0")), env=env)
    assert r.returncode == 1 and "not newer than the latest published version 1.1.0" in r.stderr
    # a tampered package is named by the user's file, not the server's temporary copy
    data = bytearray(make_package("digits", "1.2.0").read_bytes())
    data[len(data) // 3] ^= 0x01
    (tmp_path / "tampered-1.2.0.lsp").write_bytes(bytes(data))
    r = cli("fleet", "publish", str(tmp_path / "tampered-1.2.0.lsp"), env=env)
    assert r.returncode == 1 and "package 'tampered-1.2.0.lsp' refused" in r.stderr, r.stderr
    assert "tmp/tmp" not in r.stderr
    r = cli("fleet", "rollout", "start", "digits", "1.1.0", "--stages", "10,100", "--json", env=env)
    assert r.returncode == 0, r.stderr
    rid = json.loads(r.stdout)["id"]
    r = cli("fleet", "rollout", "pause", str(rid), env=env)  # issue 22 (10): under `rollout` too
    assert r.returncode == 0 and "paused" in r.stdout, r.stderr
    assert cli("fleet", "rollout", "resume", str(rid), env=env).returncode == 0
    r = cli("fleet", "pause", str(rid), env=env)
    assert r.returncode == 0 and "paused" in r.stdout
    r = cli("fleet", "rollout", "status", "--json", *conn)
    assert json.loads(r.stdout)[0]["state"] == "paused"
    assert cli("fleet", "resume", str(rid), env=env).returncode == 0
    r = cli("fleet", "promote", str(rid), "--json", env=env)
    assert json.loads(r.stdout)["state"] == "promoted"
    r = cli("fleet", "abort", str(rid), env=env)
    assert r.returncode == 1 and "cannot abort rollout" in r.stderr
    r = cli("fleet", "rollout", "abort", str(rid), env=env)
    assert r.returncode == 1 and "cannot abort rollout" in r.stderr, r.stderr  # not "No such command"
    assert cli("fleet", "rollout", "promote", "--help").returncode == 0

    # a model whose package has no reference histogram, with live telemetry
    r = cli("fleet", "publish", str(make_package("noref", "1.0.0", reference=False)), env=env)
    assert r.returncode == 0, r.stderr
    enroll = {"device_id": "pi-1", "enrollment_token": served.tokens["enrollment"], "model_id": "noref"}
    token = httpx.post(served.url + "/api/v1/devices/register", json=enroll).json()["token"]
    dev = {"Authorization": f"Bearer {token}"}
    checkin = {"model_id": "noref", "model_version": "1.0.0"}
    assert httpx.post(served.url + "/api/v1/devices/pi-1/checkin", json=checkin, headers=dev).is_success
    window = {
        "window_id": "w1",
        "started": time.time() - 60,
        "ended": time.time(),
        "inferences": 321,
        "confidence_hist": [0] * 19 + [321],
    }
    assert httpx.post(served.url + "/api/v1/devices/pi-1/telemetry", json=window, headers=dev).is_success
    r = cli("fleet", "drift", "noref", env=env)
    assert r.returncode == 0, r.stderr
    assert "321" in r.stdout and "no-reference" in r.stdout
    assert "no reference histogram in the package (build it with `liteship pipeline`" in r.stdout
    assert "insufficient" not in r.stdout

    r = cli("fleet", "devices", "--json", env=env)
    (device,) = json.loads(r.stdout)
    assert (device["id"], device["model_version"], device["assigned_version"]) == ("pi-1", "1.0.0", "1.0.0")
    assert device["last_checkin"].endswith("Z") and device["reverts"] == 0
    # issue 21 item 11: a device's strings are text, never rich markup
    hostile = {"model_id": "noref", "model_version": "[/]", "runtime": {"machine": "[bold]x[/]"}}
    assert httpx.post(served.url + "/api/v1/devices/pi-1/checkin", json=hostile, headers=dev).is_success
    for args in ((), ("--group-by", "machine")):
        r = cli("fleet", "devices", *args, env=env)
        assert r.returncode == 0, r.stderr
        assert "[/]" in r.stdout and "internal error" not in r.stderr
    r = cli("fleet", "drift", "digits", "--json", env=env)
    assert {s["version"] for s in json.loads(r.stdout)} == {"1.0.0", "1.1.0"}
    r = cli("fleet", "devices", env={**env, "LITESHIP_TOKEN": "wrong"})
    assert r.returncode == 1 and "401" in r.stderr

    # a second server on the same port: one clear line, exit 1 (not uvicorn's 3)
    r = cli("serve", "--port", str(served.port), "--data", str(tmp_path / "other"))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"port {served.port} is in use; pick another with --port" in r.stderr
    assert "Traceback" not in r.stderr and "listening" not in r.stdout


def test_serve_input_errors(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = cli("serve", "--data", str(tmp_path / "afile"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--data" in r.stderr and "is a file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("serve", "--port", "99999", "--data", str(tmp_path / "d"))
    assert r.returncode == 2 and "99999 is not in the range 1<=x<=65535" in r.stderr
    # weak tokens are refused off loopback, whatever the environment
    r = cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--data",
        str(tmp_path / "d"),
        env={"LITESHIP_ADMIN_TOKEN": "changethis", "LITESHIP_ENVIRONMENT": "development"},
    )
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 with weak tokens" in r.stderr
    assert "UserWarning" not in r.stderr and "pydantic" not in r.stderr
    r = cli("serve", "--help")
    assert "Address to listen on" in r.stdout and "TCP port to listen on" in r.stdout


def test_fleet_connection_messages(cli):
    r = cli("fleet", "--help")
    assert "http://127.0.0.1:8700" in r.stdout and "LITESHIP_SERVER" in r.stdout
    r = cli("fleet", "devices", "--server", "notaurl", "--token", "t")
    assert r.returncode == 1 and "--server must be an http:// or https:// URL" in r.stderr
    r = cli("fleet", "devices", "--server", "http://127.0.0.1:1", "--token", "t")
    assert r.returncode == 1 and "cannot reach the fleet server at http://127.0.0.1:1" in r.stderr
    assert ".." not in r.stderr and "Check --server" in r.stderr
    r = cli("fleet", "devices", env={"LITESHIP_TOKEN": ""})
    assert r.returncode == 1 and "no admin token given. Pass --token" in r.stderr


def test_serve_refuses_workers_on_sqlite(cli, tmp_path):
    r = cli("serve", "--data", str(tmp_path), "--workers", "2")
    assert r.returncode == 2 and "PostgreSQL" in r.stderr


def test_package_and_publish_the_variants_of_one_release(served, cli, keys, tmp_path):
    """Issue 24: `liteship package --variant/--when/--default-variant`, then `fleet publish` of both
    packages in any order (the default goes first), and `fleet devices` shows the variant columns."""
    model = (
        Path(__file__).resolve().parents[2] / "data" / "third_party" / "mobilenet_v1_0.25_224_quant.tflite"
    )
    env = {"LITESHIP_SERVER": served.url, "LITESHIP_TOKEN": served.tokens["admin"]}
    out = tmp_path / "lsp"
    common = ["package", str(model), "--id", "vcli", "--version", "1.0.0", "--key", keys["good"].private_path]
    r = cli(*common, "-o", str(out), "--variant", "float", "--default-variant", "--json")
    assert r.returncode == 0, r.stderr
    r = cli(*common, "-o", str(out), "--variant", "int8-dotprod", "--when", "machine=aarch64,isa=dotprod")
    assert r.returncode == 0 and "variant int8-dotprod: machine aarch64 + dotprod" in r.stdout, r.stderr
    r = cli(*common, "-o", str(out), "--when", "machine=aarch64")  # --when without --variant
    assert r.returncode == 2 and "add --variant NAME" in r.stderr and "Traceback" not in r.stderr
    r = cli(*common, "-o", str(out), "--variant", "x", "--when", "cpu=a76")
    assert r.returncode == 2 and "unknown key 'cpu'" in r.stderr
    packages = [str(out / "vcli-1.0.0.int8-dotprod.lsp"), str(out / "vcli-1.0.0.float.lsp")]
    r = cli("fleet", "publish", *packages, "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert [p["variant"] for p in json.loads(r.stdout)] == ["float", "int8-dotprod"]
    r = cli("fleet", "devices", env=env)
    assert r.returncode == 0 and "variant" in r.stdout
    # cohorts and windows (issue 24.3-4)
    r = httpx.post(
        f"{served.url}/api/v1/devices/register",
        json={"device_id": "vdev", "enrollment_token": served.tokens["enrollment"], "tags": ["site=berlin"]},
    )
    assert r.status_code == 201, r.text
    r = cli("fleet", "tag", "vdev", "--add", "ring=canary", "--window", "02:00-04:00", env=env)
    assert r.returncode == 0 and "tags site=berlin, ring=canary; update windows 02:00-04:00" in r.stdout, (
        r.stderr
    )
    r = cli("fleet", "pin", "vcli", "ring=canary", "1.0.0", env=env)
    assert r.returncode == 0 and "ring=canary → 1.0.0" in r.stdout, r.stderr
    r = cli("fleet", "pin", "vcli", "ring=canary", env=env)
    assert r.returncode == 2 and "--remove" in r.stderr
    assert cli("fleet", "pin", "vcli", "ring=canary", "--remove", env=env).returncode == 0
    r = cli("fleet", "windows", "ring=canary", "01:00-02:00", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == {"ring=canary": ["01:00-02:00"]}
    r = cli("fleet", "tag", "vdev", "--window", "25:00-26:00", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
