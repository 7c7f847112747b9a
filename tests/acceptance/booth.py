"""A booth for the drills, in a process of its own: it shoots one photo every INTERVAL seconds the
way DSLR Remote Pro does (a new connection, password first, then the JPEG) and prints one JSON
line per shot: {"status", "seconds"}. Its timings are not bent by the load the test itself makes.

    python -m tests.acceptance.booth --port 8080 --password … --photo tests/fixtures/dslr_landscape.jpg --shots 6
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import uuid
from pathlib import Path


def shoot(port: int, slot: str, password: str, photo: bytes, timeout: float) -> int:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{password}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"fileToUpload\"; filename=\"IMG_0001.JPG\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", f"/ingest/{slot}", body=body,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--slot", default="slot-001")
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    photo = args.photo.read_bytes()
    for _ in range(args.shots):
        started = time.monotonic()
        try:
            status = shoot(args.port, args.slot, args.password, photo, args.timeout)
        except OSError as exc:
            status = f"{exc.__class__.__name__}: {exc}"
        seconds = time.monotonic() - started
        print(json.dumps({"status": status, "seconds": round(seconds, 4)}), flush=True)
        time.sleep(max(0.0, args.interval - seconds))
    sys.exit(0)


if __name__ == "__main__":
    main()
