"""`agora serve --workers 2`: two server processes, one set of metrics. Whichever process answers a scrape,
it counts the requests both served (prometheus_client's multiprocess mode, set up by `serve`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live import free_port

pytestmark = pytest.mark.slow


def healthz_count(base: str) -> float:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "agora_http_requests_total" and sample.labels["route"] == "/healthz":
                return sample.value
    return 0.0


def test_a_scrape_of_either_server_process_counts_the_requests_of_both(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "agora", "serve", "--port", str(port), "--workers", "2", "--no-worker"],
        cwd=Path.cwd(),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        pids: set[str] = set()
        while len(pids) < 2:  # both processes up (each logs its own startup)
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            pids = {
                line.split("[")[1].split("]")[0]
                for line in log.read_text().splitlines()
                if "Started server process" in line
            }
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        before = healthz_count(base)
        for _ in range(30):  # a new connection each: the kernel spreads them over both processes
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        counts = {healthz_count(base) for _ in range(6)}
        assert counts == {before + 30}, (before, counts)
        directory = Path("var") / "metrics" / str(port)
        assert len({path.name.split("_")[-1] for path in directory.glob("*.db")}) >= 2  # files of both processes
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
