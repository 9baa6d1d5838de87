"""Hostile and broken "miners" for the sandbox tests: one stdlib-only server, one mode per image.

Each mode is what a careless or malicious submission might do; the sandbox must stop every one
and name why. Modes (the image's ``ARENA_ADVERSARY`` environment variable picks one):

    crash         exits with an error before serving anything
    unhealthy     listens, but ``/health`` answers 503 forever
    hang          healthy; a completion sends its headers and a first chunk, then nothing
    network       healthy; every answer needs data from the internet (fails without egress)
    write_models  tries to plant a file in /models at start, and stops if it cannot
    fork_bomb     forks until the process limit stops it, then keeps the processes alive
    oom           allocates memory until the memory limit kills it
"""

import http.server
import json
import os
import socket
import sys
import time

PORT = 8000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    mode = "hang"

    def log_message(self, fmt: str, *args: object) -> None:  # keep logs to what matters
        return

    def do_GET(self) -> None:
        status = 503 if self.mode == "unhealthy" else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.mode == "network":
            self.answer_from_internet()
        else:
            self.hang_mid_answer()

    def hang_mid_answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {
            "id": "chatcmpl-hang",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "arena-tiny",
            "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
        }
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()
        time.sleep(3600)

    def answer_from_internet(self) -> None:
        try:
            with socket.create_connection(("deb.debian.org", 80), timeout=5) as conn:
                conn.sendall(b"HEAD / HTTP/1.0\r\nHost: deb.debian.org\r\n\r\n")
                conn.recv(64)
        except OSError as exc:
            log(f"network error: could not reach deb.debian.org: {exc!r}")
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.hang_mid_answer()


def serve(mode: str) -> None:
    Handler.mode = mode
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    log(f"adversary {mode} listening on {PORT}")
    server.serve_forever()


def fork_bomb() -> None:
    children = 0
    while True:
        try:
            if os.fork() == 0:
                time.sleep(3600)
                os._exit(0)
            children += 1
        except OSError as exc:
            log(f"fork failed after {children} children: {exc!r}")
            time.sleep(1)


def eat_memory() -> None:
    hoard = []
    while True:
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it is really resident
        hoard.append(block)
        log(f"holding {len(hoard) * 64} MiB")


def main() -> None:
    mode = os.environ.get("ARENA_ADVERSARY", "")
    if mode == "crash":
        log("adversary crash: failing on purpose before serving")
        sys.exit(3)
    if mode == "write_models":
        with open("/models/planted.txt", "w") as handle:  # must fail: /models is read-only
            handle.write("owned")
    if mode == "fork_bomb":
        fork_bomb()
    if mode == "oom":
        eat_memory()
    if mode in ("unhealthy", "hang", "network", "write_models"):
        serve(mode)
    sys.exit(f"unknown ARENA_ADVERSARY {mode!r}")


if __name__ == "__main__":
    main()
