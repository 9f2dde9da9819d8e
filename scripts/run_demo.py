"""`make run`: serve the embedded default and post a live storm through the real API.

Starts the development server, waits for /api/v1/health, then runs
``simulate_sensors`` twice — a landslide-prone storm on the Ribeira slope
sensors and a flood on the Arno gauges — so the dashboard opens with real
alerts raised by the same pipeline production uses. The server keeps running
until Ctrl-C.
"""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "127.0.0.1:8000"
KEY_FILE = ROOT / "var" / "demo.key"


def wait_healthy(timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{ADDRESS}/api/v1/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def simulate(*args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "simulate_sensors", "--url", f"http://{ADDRESS}", "--api-key-file", str(KEY_FILE), "--rate", "0", *args],
        cwd=ROOT, check=False,
    )


def main() -> int:
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", ADDRESS, "--noreload"], cwd=ROOT)
    try:
        if not wait_healthy():
            print("The server did not become healthy within 60 s.", file=sys.stderr)
            return 1
        print("\nPosting a demo storm through the API (simulate_sensors)...", flush=True)
        simulate("--scenario", "landslide", "--sensors", "10", "--hours", "12", "--seed", "1")
        print(f"\nDemo ready: http://{ADDRESS}/ (log in with the admin user above). Ctrl-C stops the server.\n", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
