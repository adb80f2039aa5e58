"""Load test of the Gradio app (not a timed test), against an app already running (`python spaces_app/app.py`) or
one this script starts.

    python scripts/load_test_app.py [--url http://127.0.0.1:7860] [--clients 20] [--requests 5]

N concurrent clients, each making M requests for a 64-image grid: prints the cold start to first served image (when
it starts the app), errors, and p50/p95 latency.

    python scripts/load_test_app.py --fairness [--slow-model vae-emoji] [--slow-visitors 8] [--probes 10]

Fair queueing: the latency of a 1-image request on a fast model (--model) on the idle app, then while visitors
(each its own local address, 127.0.0.x) keep asking a slow model for SLOW_IMAGES images; prints both medians and
their ratio, and how many slow requests were served or told "busy".

    python scripts/load_test_app.py --peak-memory [--images 16]

The app's per-request memory: its peak RSS (VmHWM) with a model at the Space's limits loaded (a residual GAN at
256 px, 37.4 M parameters, 17.3 M activation values per image, random weights), then after two concurrent Generate
requests for --images images each (16: its cap). Needs the app started here (Linux /proc).
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOW_IMAGES = 16  # the app's cap for slow models


def wait_ready(url, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/config", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def call(url: str, api_name: str, data: list, source: str) -> tuple[str, float]:
    """One request through Gradio's HTTP API from a local source address (another address: another visitor):
    ("complete" / "error" / "refused", seconds from joining the queue to the answer)."""
    host, port = url.removeprefix("http://").split(":")
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=600, source_address=(source, 0))
    connection.request(
        "POST", f"/gradio_api/call/{api_name}", json.dumps({"data": data}), {"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    body = response.read().decode()
    if response.status != 200:
        return "refused", time.perf_counter() - start
    connection.request("GET", f"/gradio_api/call/{api_name}/{json.loads(body)['event_id']}")
    stream = connection.getresponse().read().decode()
    return ("complete" if "event: complete" in stream else "error"), time.perf_counter() - start


def probe_latency(url: str, model: str, probes: int) -> float:
    """The median seconds of `probes` 1-image requests on `model`, one after another, from one visitor."""
    times = []
    for seed in range(probes):
        outcome, seconds = call(url, "generate", [model, "", seed, 1, "all", 1.0], "127.0.0.2")
        assert outcome == "complete", outcome
        times.append(seconds)
    return statistics.median(times)


def fairness(url: str, args) -> None:
    """The latency ratio of a fast 1-image request under a slow model's load to the same request on the idle app."""
    probe_latency(url, args.model, 2)  # the fast model loaded
    assert call(url, "generate", [args.slow_model, "", 0, 1, "all", 1.0], "127.0.0.3")[0] == "complete"
    idle = probe_latency(url, args.model, args.probes)
    stop, outcomes = threading.Event(), []

    def slow_visitor(i):  # asks again at once when served, after --retry-s when told busy
        while not stop.is_set():
            outcomes.append(
                call(url, "generate", [args.slow_model, "", i, SLOW_IMAGES, "all", 1.0], f"127.0.0.{10 + i}")
            )
            if outcomes[-1][0] != "complete":
                stop.wait(args.retry_s)

    threads = [threading.Thread(target=slow_visitor, args=(i,)) for i in range(args.slow_visitors)]
    for thread in threads:
        thread.start()
    time.sleep(args.warm_s)  # the slow requests queued and running
    loaded = probe_latency(url, args.model, args.probes)
    stop.set()
    for thread in threads:
        thread.join()
    counts = {kind: sum(o == kind for o, _ in outcomes) for kind in ("complete", "error", "refused")}
    served = [s for o, s in outcomes if o == "complete"]
    print(
        f"1-image {args.model} request, median of {args.probes}: idle {idle:.3f} s, with {args.slow_visitors} visitors "
        f"asking {args.slow_model} for {SLOW_IMAGES} images {loaded:.3f} s: ratio {loaded / idle:.2f}"
    )
    print(
        f"slow requests: {counts['complete']} served (median {statistics.median(served) if served else float('nan'):.1f} s), "
        f"{counts['error']} told busy by the slow lane, {counts['refused']} refused when joining (per-visitor limit)"
    )


def peak_memory(url: str, pid: int, args) -> None:
    """The app's peak RSS with the model at the limits loaded, then after two concurrent requests of --images."""
    from hf_dgm import GANConfig, GANModel

    def peak_gb() -> float:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM"))
        return int(line.split()[1]) / 2**20

    folder = Path(tempfile.mkdtemp()) / "gan-at-limit"
    try:
        config = GANConfig(
            architecture="resnet", image_size=256, num_channels=3, generator_channels=35, discriminator_channels=35
        )
        GANModel(config).save_pretrained(folder)
        request = ["dcgan-mnist", str(folder), 0, 1, "all", 1.0]
        assert call(url, "generate", request, "127.0.0.2")[0] == "complete"
        loaded = peak_gb()
        request[3], outcomes = args.images, []
        threads = [
            threading.Thread(target=lambda i=i: outcomes.append(call(url, "generate", request, f"127.0.0.{3 + i}")))
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(
            f"peak RSS with the model at the limits loaded: {loaded:.2f} GB; after two concurrent {args.images}-image "
            f"requests ({', '.join(o for o, _ in outcomes)}, {max(s for _, s in outcomes):.1f} s): {peak_gb():.2f} GB"
        )
    finally:
        shutil.rmtree(folder.parent)


def assert_grid(out):
    """The answer holds the 64-image grid (8 x 8 images of 28 px, 2 px padding)."""
    from PIL import Image

    assert Image.open(out[1]).size == (242, 242), out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="a running app; default: start one on port 7861")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--model", default="dcgan-mnist")
    parser.add_argument("--app", default=str(ROOT / "spaces_app" / "app.py"), help="app file to start (A/B runs)")
    parser.add_argument("--fairness", action="store_true", help="measure the fast/slow latency ratio instead")
    parser.add_argument("--slow-model", default="vae-emoji")
    parser.add_argument("--slow-visitors", type=int, default=8)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--warm-s", type=float, default=5.0, help="seconds of slow load before the probes")
    parser.add_argument("--retry-s", type=float, default=1.0, help="a slow visitor told busy asks again after this")
    parser.add_argument("--peak-memory", action="store_true", help="measure the per-request memory instead")
    parser.add_argument("--images", type=int, default=SLOW_IMAGES, help="images per request for --peak-memory")
    return parser.parse_args()


def throughput(url: str, args) -> None:
    """--clients concurrent clients, each making --requests requests for a 64-image grid: errors and latencies."""
    from gradio_client import Client

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


def main():
    args = parse_args()
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
    try:
        if args.fairness:
            return fairness(url, args)
        if args.peak_memory:
            if proc is None:
                raise SystemExit("--peak-memory reads the memory of an app it starts: leave --url out")
            return peak_memory(url, proc.pid, args)
        if proc is not None:
            first = Client(url, verbose=False).predict(args.model, "", 0, 64, "all", 1.0, api_name="/generate")
            assert_grid(first)
            print(f"cold start to first served 64-image grid: {time.perf_counter() - start:.1f} s")
        throughput(url, args)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
