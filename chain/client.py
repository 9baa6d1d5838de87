"""One connection to a subtensor node: reconnect with backoff, storage reads, signed extrinsics.

Every failure of the transport surfaces as :class:`ChainUnavailable` after bounded retries, and
every failed dispatch as :class:`DispatchFailed` naming the error
(``SubtensorModule.NotRegistered``), so callers never see websocket exceptions or raw indices.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from scalecodec.base import ScaleBytes
from scalecodec.types import GenericCall, GenericExtrinsic
from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from substrateinterface.storage import StorageKey
from websocket import WebSocketException

from rules.errors import ArenaError

__all__ = [
    "Backoff",
    "ChainClient",
    "ChainError",
    "ChainUnavailable",
    "DispatchFailed",
    "ExtrinsicRejected",
    "ExtrinsicResult",
    "resolve_network",
    "DEFAULT_LOCAL_PORT",
    "NETWORKS",
    "error_name",
    "dispatch_error",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_LOCAL_PORT = 9944
NETWORKS = {
    "local": f"ws://127.0.0.1:{DEFAULT_LOCAL_PORT}",
    "finney": "wss://entrypoint-finney.opentensor.ai:443",
    "test": "wss://test.finney.opentensor.ai:443",
}
# Errors that mean "the connection is gone", as opposed to a node answering with an error.
_TRANSPORT_ERRORS = (WebSocketException, ConnectionError, OSError, socket.timeout, BrokenPipeError)


class ChainError(ArenaError, RuntimeError):
    """Root of the errors this package raises about the chain (refused, unreachable): worth
    retrying. Bad input (:class:`chain.wallet.WalletError`, :class:`chain.weights.WeightsError`)
    is not one, so a retry loop never spins on it."""


class ChainUnavailable(ChainError):
    """The node could not be reached after the retries the backoff allows."""


class DispatchFailed(ChainError):
    """An extrinsic was included but its call failed; ``error`` is ``Pallet.ErrorName``."""

    def __init__(self, error: str, result: ExtrinsicResult) -> None:
        super().__init__(f"{error} (extrinsic {result.extrinsic_hash} in block {result.block})")
        self.error = error
        self.result = result


class ExtrinsicRejected(ChainError):
    """The node refused an extrinsic before inclusion (bad signature, stale nonce, no funds)."""


@dataclass(frozen=True)
class ExtrinsicResult:
    extrinsic_hash: str
    block_hash: str
    block: int
    success: bool
    error: str = ""
    events: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``initial * 2**n`` capped at ``maximum``, for ``attempts`` tries."""

    initial: float = 0.2
    maximum: float = 5.0
    attempts: int = 8

    def delays(self):
        delay = self.initial
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.maximum)


def resolve_network(network: str) -> str:
    """A websocket URL from a network name (``local``, ``finney``, ``test``) or a ws(s):// URL."""
    if network.startswith(("ws://", "wss://")):
        return network
    try:
        return NETWORKS[network]
    except KeyError:
        raise ValueError(
            f"unknown network {network!r}: use one of {', '.join(NETWORKS)} or a ws:// URL"
        ) from None


class ChainClient:
    """A reconnecting client; ``rpc_calls`` counts every JSON-RPC request sent."""

    def __init__(self, url: str, *, backoff: Backoff | None = None, timeout_s: float = 120.0):
        self.url = url
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        self.rpc_calls = 0
        self._substrate: SubstrateInterface | None = None

    # --- connection ----------------------------------------------------------------------

    @property
    def substrate(self) -> SubstrateInterface:
        if self._substrate is None:
            substrate = SubstrateInterface(
                url=self.url, ws_options={"timeout": self.timeout_s}, auto_reconnect=False
            )
            inner = substrate.rpc_request

            def counted(method, params, *args, **kwargs):
                self.rpc_calls += 1
                return inner(method, params, *args, **kwargs)

            substrate.rpc_request = counted
            node_block_hash = substrate.get_block_hash

            def block_hash(block_id=None):
                # Signatures commit to the genesis hash the runtime checks, System.BlockHash(0).
                # A chopsticks node's RPC can report another one after resuming from its db.
                if block_id == 0:
                    return self.query("System", "BlockHash", [0])
                return node_block_hash(block_id)

            substrate.get_block_hash = block_hash
            self._substrate = substrate
        return self._substrate

    def close(self) -> None:
        if self._substrate is not None:
            with contextlib.suppress(*_TRANSPORT_ERRORS):
                self._substrate.close()
            self._substrate = None

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _with_retry(self, fn: Callable[[SubstrateInterface], T], what: str) -> T:
        last: Exception | None = None
        delays = self.backoff.delays()
        while True:
            try:
                return fn(self.substrate)
            except _TRANSPORT_ERRORS as exc:
                last = exc
                self.close()
            delay = next(delays, None)
            if delay is None:
                raise ChainUnavailable(
                    f"{what}: node at {self.url} unreachable after {self.backoff.attempts} tries "
                    f"({type(last).__name__}: {last}); is the node running?"
                ) from last
            log.warning("%s: connection to %s lost, retrying in %.1fs", what, self.url, delay)
            time.sleep(delay)

    # --- reads ---------------------------------------------------------------------------

    def rpc(self, method: str, params: list) -> Any:
        def go(s: SubstrateInterface) -> Any:
            response = s.rpc_request(method, params)
            if "error" in response:
                raise ChainError(f"{method} failed: {response['error']}")
            return response["result"]

        return self._with_retry(go, method)

    def finalized_number(self) -> int:
        head = self.rpc("chain_getFinalizedHead", [])
        return int(self.rpc("chain_getHeader", [head])["number"], 16)

    def block_hash(self, number: int) -> str | None:
        """Hash of block ``number``, ``None`` where the chain has none (not yet, or skipped)."""
        return self.rpc("chain_getBlockHash", [number])

    def query(
        self, module: str, storage: str, params: list | None = None, block_hash: str | None = None
    ) -> Any:
        """Decoded value of one storage entry (the default when absent, ``None`` for options)."""

        def go(s: SubstrateInterface) -> Any:
            if s.metadata is None:
                s.init_runtime()
            key = StorageKey.create_from_storage_function(
                module, storage, params or [], runtime_config=s.runtime_config, metadata=s.metadata
            )
            raw = s.rpc_request("state_getStorage", [key.to_hex(), block_hash])
            if "error" in raw:
                raise ChainError(f"reading {module}.{storage} failed: {raw['error']}")
            return self._decode_storage(s, module, storage, raw.get("result"))

        return self._with_retry(go, f"{module}.{storage}")

    def query_many(
        self, module: str, storage: str, params: list[list], block_hash: str | None = None
    ) -> list[Any]:
        """Several entries of one storage item in a single request, in ``params`` order."""
        if not params:
            return []

        def go(s: SubstrateInterface) -> list[Any]:
            if s.metadata is None:
                s.init_runtime()
            keys = [
                StorageKey.create_from_storage_function(
                    module, storage, p, runtime_config=s.runtime_config, metadata=s.metadata
                ).to_hex()
                for p in params
            ]
            raw = s.rpc_request("state_queryStorageAt", [keys, block_hash])
            if "error" in raw:
                raise ChainError(f"reading {module}.{storage} failed: {raw['error']}")
            found = {k: v for change in raw["result"] for k, v in change["changes"]}
            return [self._decode_storage(s, module, storage, found.get(k)) for k in keys]

        return self._with_retry(go, f"{module}.{storage} batch")

    @staticmethod
    def _decode_storage(s: SubstrateInterface, module: str, storage: str, data: str | None):
        item = s.metadata.get_metadata_pallet(module).get_storage_function(storage)
        type_string = item.get_value_type_string()
        if data is None:
            if item.value["modifier"] != "Default":
                return None
            data = item.value_object["default"].value_object
        obj = s.runtime_config.create_scale_object(
            type_string=type_string, data=ScaleBytes(data), metadata=s.metadata
        )
        return obj.decode()

    def query_map(
        self, module: str, storage: str, params: list | None = None, block_hash: str | None = None
    ) -> list[tuple[Any, Any]]:
        """All ``(key, value)`` pairs under a map prefix, decoded."""

        def go(s: SubstrateInterface) -> list[tuple[Any, Any]]:
            result = s.query_map(
                module, storage, params or [], block_hash=block_hash, page_size=1000
            )
            return [(_plain(k), _plain(v)) for k, v in result]

        return self._with_retry(go, f"{module}.{storage} map")

    def events(self, block_hash: str) -> list[dict]:
        """The block's events as dicts (``module_id``, ``event_id``, ``attributes``, ...)."""
        records = self.query("System", "Events", block_hash=block_hash)
        keys = ("module_id", "event_id", "attributes", "extrinsic_idx")
        return [{key: record.get(key) for key in keys} for record in records]

    def constant(self, module: str, name: str) -> Any:
        return self._with_retry(lambda s: _plain(s.get_constant(module, name)), f"{module}.{name}")

    # --- writes --------------------------------------------------------------------------

    def compose_call(self, module: str, function: str, params: dict) -> GenericCall:
        return self._with_retry(lambda s: s.compose_call(module, function, params), "compose_call")

    def submit(self, call: GenericCall, keypair: Keypair, *, raise_on_error: bool = True):
        """Sign with ``keypair``, submit and wait for inclusion; see :meth:`submit_extrinsic`."""
        extrinsic = self._with_retry(
            lambda s: s.create_signed_extrinsic(call=call, keypair=keypair), "signing"
        )
        return self.submit_extrinsic(extrinsic, raise_on_error=raise_on_error)

    def submit_extrinsic(self, extrinsic: GenericExtrinsic, *, raise_on_error: bool = True):
        """Submit a signed extrinsic and wait for inclusion; returns its block and outcome.

        A lost connection after sending is not retried (the extrinsic may have landed): it
        raises :class:`ChainUnavailable` and the caller decides, e.g. by reading chain state.
        """
        substrate = self.substrate
        try:
            receipt = substrate.submit_extrinsic(extrinsic, wait_for_inclusion=True)
            block_hash = receipt.block_hash
            events = [_event_dict(e) for e in receipt.triggered_events]
            header = substrate.rpc_request("chain_getHeader", [block_hash])["result"]
        except _TRANSPORT_ERRORS as exc:
            self.close()
            raise ChainUnavailable(
                f"connection to {self.url} lost while submitting an extrinsic; "
                "it may or may not have been included"
            ) from exc
        except SubstrateRequestException as exc:
            raise ExtrinsicRejected(f"node rejected the extrinsic: {_rpc_error_text(exc)}") from exc
        error = dispatch_error(substrate, events)
        result = ExtrinsicResult(
            extrinsic_hash=receipt.extrinsic_hash,
            block_hash=block_hash,
            block=int(header["number"], 16),
            success=not error,
            error=error,
            events=events,
        )
        if error and raise_on_error:
            raise DispatchFailed(error, result)
        return result

    def sudo(self, call: GenericCall, sudo_key: Keypair) -> ExtrinsicResult:
        """``Sudo.sudo(call)``; fails with the inner error, which sudo itself reports as success."""
        return self.submit(self.compose_call("Sudo", "sudo", {"call": call}), sudo_key)


def _rpc_error_text(exc: SubstrateRequestException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        return f"{arg.get('message', '')} {arg.get('data', '')}".strip()
    return str(arg)


def _plain(obj: Any) -> Any:
    return obj.value if hasattr(obj, "value") else obj


def _event_dict(event: Any) -> dict:
    value = event.value
    inner = value.get("event", value)
    return {
        "module_id": inner.get("module_id") or value.get("module_id"),
        "event_id": inner.get("event_id") or value.get("event_id"),
        "attributes": inner.get("attributes", value.get("attributes")),
    }


def error_name(substrate: SubstrateInterface, dispatch_error: Any) -> str:
    """``Pallet.Error`` for a module error, else the variant (``BadOrigin``, ``Token.X``)."""
    if isinstance(dispatch_error, dict) and "Module" in dispatch_error:
        module = dispatch_error["Module"]
        index = module["index"]
        error_bytes = module["error"]
        error_index = int(error_bytes[2:4], 16) if isinstance(error_bytes, str) else error_bytes[0]
        pallet = next((p for p in substrate.metadata.pallets if p["index"] == index), None)
        if pallet is None:
            return f"Module[{index}].Error[{error_index}]"
        error = pallet.errors[error_index] if pallet.errors else None
        return f"{pallet.name}.{error.name if error else error_index}"
    if isinstance(dispatch_error, dict):
        (kind, detail), *_ = dispatch_error.items()
        return f"{kind}.{detail}" if isinstance(detail, str) else kind
    return str(dispatch_error)


def dispatch_error(substrate: SubstrateInterface, events: list[dict]) -> str:
    """The error of an included extrinsic from its events, including a failed ``Sudo.Sudid``."""
    for event in events:
        key = (event["module_id"], event["event_id"])
        attrs = event["attributes"]
        if key == ("System", "ExtrinsicFailed"):
            return error_name(
                substrate, attrs["dispatch_error"] if isinstance(attrs, dict) else attrs[0]
            )
        if key == ("Sudo", "Sudid"):
            result = attrs["sudo_result"] if isinstance(attrs, dict) else attrs
            if isinstance(result, dict) and "Err" in result:
                return error_name(substrate, result["Err"])
    return ""
