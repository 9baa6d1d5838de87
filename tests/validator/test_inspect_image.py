"""The scheduler's image inspection against a loopback registry stub: manifest and config blob
read, verified and fingerprinted; what it logs for a final refusal; what it asks again."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actors.scheduler import inspect_image
from events.types import SubmissionCommitted, decode, encode
from harness.sandbox_image import runtime_digest

LAYERS = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
DIFF_IDS = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
TOKEN = "stub-token"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config(cmd: list[str], label: str) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": cmd, "Env": ["A=1"], "Labels": {"org.arena.role": label}},
            "rootfs": {"type": "layers", "diff_ids": DIFF_IDS},
        }
    ).encode()


def manifest(config_digest: str, config_size: int = 10) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": config_digest, "size": config_size},
            "layers": [{"digest": LAYERS[0], "size": 100}, {"digest": LAYERS[1], "size": 200}],
        }
    ).encode()


FAST = config(["serve", "--fast"], "fast-miner")
RELABELLED = config(["serve", "--fast"], "copied")
OTHER_CMD = config(["serve", "--eager"], "fast-miner")
NOT_A_CONFIG = b'{"config": {}}'
HUGE = b" " * (4 * 1024 * 1024 + 1)
MISSING = sha(b"never pushed")

# path under /v2/ -> body; manifests are served at their own digest.
ROUTES: dict[str, bytes] = {}
# name -> (repository, manifest digest) of each image served
IMAGES: dict[str, tuple[str, str]] = {}


def serve(name: str, blob_digest: str, blob: bytes | None, repository: str = "arena/x") -> None:
    """An image named ``name`` whose manifest names config ``blob_digest``, served as ``blob``."""
    body = manifest(blob_digest)
    IMAGES[name] = (repository, sha(body))
    ROUTES[f"{repository}/manifests/{sha(body)}"] = body
    if blob is not None:
        ROUTES[f"{repository}/blobs/{blob_digest}"] = blob


serve("fast", sha(FAST), FAST)
serve("relabelled", sha(RELABELLED), RELABELLED)
serve("other-cmd", sha(OTHER_CMD), OTHER_CMD)
serve("private", sha(FAST), FAST, repository="arena/private")
serve("config-missing", MISSING, None)
serve("config-corrupt", sha(OTHER_CMD), FAST, repository="arena/corrupt")
serve("not-a-config", sha(NOT_A_CONFIG), NOT_A_CONFIG)
serve("config-huge", sha(HUGE), HUGE)


class _Registry(BaseHTTPRequestHandler):
    """Serves ROUTES; ``arena/private`` only with the token its 401 challenge leads to;
    ``arena/broken`` answers 500."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].removeprefix("/v2/")
        if path == "token":
            return self._answer(200, json.dumps({"token": TOKEN}).encode())
        if path.startswith("arena/broken/"):
            return self._answer(500, b"")
        if path.startswith("arena/private/") and (
            self.headers.get("Authorization") != f"Bearer {TOKEN}"
        ):
            realm = f"http://{self.headers['Host']}/v2/token"
            challenge = (
                f'Bearer realm="{realm}",service="stub",scope="repository:arena/private:pull"'
            )
            return self._answer(401, b"", {"WWW-Authenticate": challenge})
        body = ROUTES.get(path)
        if body is None:
            return self._answer(404, b"")
        self._answer(200, body)

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def commitment(registry: str, image: str, repository: str = "") -> SubmissionCommitted:
    """The commitment of a served image (another repository if given), or of an unknown one."""
    served, digest = IMAGES.get(image, ("arena/x", "sha256:" + "9" * 64))
    return SubmissionCommitted(
        netuid=2,
        uid=1,
        hotkey="h",
        block=5,
        image=f"{registry}/{repository or served}",
        digest=digest,
    )


def test_a_readable_image_is_logged_with_its_fingerprint(registry: str) -> None:
    event = inspect_image(commitment(registry, "fast"), 10**9)
    assert event is not None
    assert (event.key, event.digest, event.refused, event.error) == (
        "h@5",
        IMAGES["fast"][1],
        "",
        "",
    )
    assert (event.config_digest, event.runtime_digest) == (sha(FAST), runtime_digest(FAST))
    assert event.size_bytes == 310
    assert decode(encode(event)) == event


def test_the_config_blob_is_read_with_the_registrys_token(registry: str) -> None:
    event = inspect_image(commitment(registry, "private"), 10**9)
    assert event is not None and event.refused == ""
    assert event.runtime_digest == runtime_digest(FAST)


def test_a_relabelled_image_runs_the_same_way_and_another_command_does_not(registry: str) -> None:
    fast, relabelled, other = (
        inspect_image(commitment(registry, name), 10**9)
        for name in ("fast", "relabelled", "other-cmd")
    )
    assert fast is not None and relabelled is not None and other is not None
    assert (fast.refused, relabelled.refused, other.refused) == ("", "", "")
    assert relabelled.config_digest != fast.config_digest
    assert relabelled.runtime_digest == fast.runtime_digest
    assert other.runtime_digest != fast.runtime_digest


@pytest.mark.parametrize(
    ("image", "max_bytes", "reason"),
    [
        ("unknown", 10**9, "manifest_not_found"),
        ("fast", 100, "too_large"),
        ("config-missing", 10**9, "config_not_found"),
        ("config-corrupt", 10**9, "digest_mismatch"),
        ("not-a-config", 10**9, "bad_config"),
        ("config-huge", 10**9, "too_large"),
    ],
)
def test_a_final_refusal_is_logged_with_its_reason_and_no_fingerprint(
    registry: str, image: str, max_bytes: int, reason: str
) -> None:
    event = inspect_image(commitment(registry, image), max_bytes)
    assert event is not None
    assert event.refused == reason
    assert event.error, "the refusal says what failed in words"
    assert (event.config_digest, event.runtime_digest) == ("", "")


def test_an_erroring_registry_logs_nothing_so_it_is_asked_again(registry: str) -> None:
    assert inspect_image(commitment(registry, "fast", "arena/broken"), 10**9) is None


def test_an_unreachable_registry_logs_nothing_so_it_is_asked_again() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    assert inspect_image(commitment(closed, "fast"), 10**9) is None
