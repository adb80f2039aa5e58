"""Load test of the Gradio app (not a timed test): N concurrent clients, each making M requests for a 64-image
grid, against an app already running (`python spaces_app/app.py`) or one this script starts.

    python scripts/load_test_app.py [--url http://127.0.0.1:7860] [--clients 20] [--requests 5]

Prints the cold start to first served image (when it starts the app), errors, and p50/p95 latency.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_ready(url, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/config", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def assert_grid(out):
    """The answer holds the 64-image grid (8 x 8 images of 28 px, 2 px padding)."""
    from PIL import Image

    assert Image.open(out[1]).size == (242, 242), out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="a running app; default: start one on port 7861")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--model", default="dcgan-mnist")
    parser.add_argument("--app", default=str(ROOT / "spaces_app" / "app.py"), help="app file to start (A/B runs)")
    args = parser.parse_args()
    from gradio_client import Client

    proc = None
    url = args.url
    if url is None:
        url = "http://127.0.0.1:7861"
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, args.app],
            env={**os.environ, "GRADIO_SERVER_PORT": "7861", "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready(url)
        first = Client(url, verbose=False).predict(args.model, "", 0, 64, "all", 1.0, api_name="/generate")
        assert_grid(first)
        print(f"cold start to first served 64-image grid: {time.perf_counter() - start:.1f} s")
    try:

        def client_run(i):
            client = Client(url, verbose=False)
            times, errors = [], 0
            for r in range(args.requests):
                t = time.perf_counter()
                try:
                    out = client.predict(args.model, "", i * 100 + r, 64, "all", 1.0, api_name="/generate")
                    assert_grid(out)
                    times.append(time.perf_counter() - t)
                except Exception as err:  # counted and reported, the run goes on
                    errors += 1
                    print(f"client {i} request {r}: {type(err).__name__}: {err}")
            return times, errors

        wall = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(client_run, range(args.clients)))
        wall = time.perf_counter() - wall
        latencies = sorted(t for times, _ in results for t in times)
        errors = sum(e for _, e in results)
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else float("nan")
        print(
            f"{args.clients} clients x {args.requests} requests (64-image grid, model {args.model}): "
            f"{len(latencies)} ok, {errors} errors in {wall:.1f} s"
        )
        print(f"latency p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
