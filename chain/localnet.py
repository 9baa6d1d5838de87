"""Bootstrap a subnet on a local dev chain through real extrinsics (for tests and the demo).

Dev keys only (``//Alice`` is sudo and subnet owner); never point this at a public network.
"""

from __future__ import annotations

from dataclasses import dataclass

from substrateinterface import Keypair

from chain.client import ChainClient, ChainError
from chain.wallet import dev_keypair

__all__ = [
    "LocalSubnet",
    "SubnetParams",
    "advance_blocks",
    "bootstrap_subnet",
    "dev_accounts",
    "dev_miner",
    "jump_blocks",
    "next_epoch_block",
    "TAO",
]

TAO = 10**9
_SUDO_URI = "//Alice"
_MINER_COLDKEY_URI = "//Bob"
_OUTSIDER_URI = "//Charlie"
_FUNDS = 1_000_000 * TAO
# One batch of burned registrations per extrinsic; keeps each block within its weight limit.
_REGISTRATIONS_PER_BATCH = 64


@dataclass(frozen=True)
class SubnetParams:
    tempo: int = 10
    weights_set_rate_limit: int = 0
    validator_stake: int = 1_000 * TAO
    # Stake a hotkey needs to set weights (a global setting; spec 218's set_weights checks
    # this rather than the validator permit). Miners have none, so they cannot set weights.
    weights_min_stake: int = TAO


@dataclass(frozen=True, repr=False)
class LocalSubnet:
    """What the bootstrap made. ``outsider`` is funded but registered nowhere."""

    url: str
    netuid: int
    sudo: Keypair
    validator: Keypair
    validator_coldkey: Keypair
    miners: tuple[Keypair, ...]
    miner_coldkey: Keypair
    outsider: Keypair
    params: SubnetParams

    def __repr__(self) -> str:
        return f"LocalSubnet(netuid={self.netuid}, miners={len(self.miners)}, url={self.url})"


def _miner_uri(i: int) -> str:
    return f"{_MINER_COLDKEY_URI}//miner{i}"


def dev_miner(i: int) -> Keypair:
    """Hotkey of dev miner ``i`` (funded by :func:`dev_accounts`, registered by the bootstrap
    when ``i`` is below its ``miners``)."""
    return dev_keypair(_miner_uri(i))


def _validator_uri() -> str:
    return f"{_SUDO_URI}//validator"


def dev_accounts(miners: int) -> tuple[str, dict[str, int]]:
    """The sudo address and the balances (rao) a chain needs at genesis for ``bootstrap_subnet``."""
    uris = [_SUDO_URI, _MINER_COLDKEY_URI, _OUTSIDER_URI, _validator_uri()]
    uris += [_miner_uri(i) for i in range(miners)]
    sudo = dev_keypair(_SUDO_URI).ss58_address
    return sudo, {dev_keypair(uri).ss58_address: _FUNDS for uri in uris}


def advance_blocks(client: ChainClient, count: int) -> int:
    """Build ``count`` empty blocks on a chopsticks node; returns the new head number."""
    # One block per request: a long batch could outlast the client's read timeout, and a
    # retried request would build the blocks twice.
    for _ in range(count):
        client.rpc("dev_newBlock", [{"count": 1}])
    return client.finalized_number()


def jump_blocks(client: ChainClient, count: int) -> int:
    """Build one block ``count`` heights above the head (chopsticks only), to pass rate limits
    measured in blocks without building every block; the heights between have no block."""
    head = client.finalized_number()
    client.rpc("dev_newBlock", [{"unsafeBlockHeight": head + count}])
    return client.finalized_number()


def _event_attr(events: list[dict], module: str, name: str) -> tuple | dict:
    for event in events:
        if (event["module_id"], event["event_id"]) == (module, name):
            return event["attributes"]
    raise ChainError(f"expected a {module}.{name} event, got none")


def _admin(client: ChainClient, function: str, **params):
    return client.compose_call("AdminUtils", function, params)


def bootstrap_subnet(
    client: ChainClient, miners: int, params: SubnetParams | None = None
) -> LocalSubnet:
    """Create a subnet, set its hyperparameters, register ``miners`` miners and a validator.

    The chain must have been started with :func:`dev_accounts` funded and ``//Alice`` as sudo.
    """
    params = params or SubnetParams()
    sudo = dev_keypair(_SUDO_URI)
    validator = dev_keypair(_validator_uri())
    miner_coldkey = dev_keypair(_MINER_COLDKEY_URI)
    miner_keys = tuple(dev_keypair(_miner_uri(i)) for i in range(miners))

    client.sudo(_admin(client, "sudo_set_network_rate_limit", rate_limit=0), sudo)
    created = client.submit(
        client.compose_call(
            "SubtensorModule",
            "register_network",
            {"hotkey": validator.ss58_address, "mechid": 1},
        ),
        sudo,
    )
    netuid = _event_attr(created.events, "SubtensorModule", "NetworkAdded")[0]

    hyperparams = [
        _admin(client, "sudo_set_tempo", netuid=netuid, tempo=params.tempo),
        _admin(
            client,
            "sudo_set_weights_set_rate_limit",
            netuid=netuid,
            weights_set_rate_limit=params.weights_set_rate_limit,
        ),
        _admin(
            client,
            "sudo_set_network_registration_allowed",
            netuid=netuid,
            registration_allowed=True,
        ),
        _admin(
            client,
            "sudo_set_max_registrations_per_block",
            netuid=netuid,
            max_registrations_per_block=miners + 1,
        ),
        _admin(
            client,
            "sudo_set_target_registrations_per_interval",
            netuid=netuid,
            target_registrations_per_interval=miners + 1,
        ),
        _admin(
            client, "sudo_set_max_allowed_uids", netuid=netuid, max_allowed_uids=max(miners + 8, 64)
        ),
        _admin(client, "sudo_set_commit_reveal_weights_enabled", netuid=netuid, enabled=False),
        _admin(client, "sudo_set_weights_min_stake", min_stake=params.weights_min_stake),
    ]
    client.sudo(client.compose_call("Utility", "batch_all", {"calls": hyperparams}), sudo)

    client.submit(
        client.compose_call(
            "SubtensorModule",
            "add_stake",
            {
                "hotkey": validator.ss58_address,
                "netuid": netuid,
                "amount_staked": params.validator_stake,
            },
        ),
        sudo,
    )
    # Permit first, while the validator is alone: an epoch over many neurons is slow here.
    _await_validator_permit(client, netuid, validator.ss58_address, params.tempo)
    for start in range(0, miners, _REGISTRATIONS_PER_BATCH):
        batch = [
            client.compose_call(
                "SubtensorModule",
                "burned_register",
                {"netuid": netuid, "hotkey": key.ss58_address},
            )
            for key in miner_keys[start : start + _REGISTRATIONS_PER_BATCH]
        ]
        client.submit(client.compose_call("Utility", "batch_all", {"calls": batch}), miner_coldkey)

    return LocalSubnet(
        url=client.url,
        netuid=netuid,
        sudo=sudo,
        validator=validator,
        validator_coldkey=sudo,
        miners=miner_keys,
        miner_coldkey=miner_coldkey,
        outsider=dev_keypair(_OUTSIDER_URI),
        params=params,
    )


def next_epoch_block(netuid: int, tempo: int, head: int) -> int:
    """The first block after ``head`` whose epoch runs for ``netuid`` (subtensor's schedule:
    ``(block + netuid + 1) % (tempo + 1) == tempo``)."""
    offset = (tempo - (head + 1 + netuid + 1)) % (tempo + 1)
    return head + 1 + offset


def _await_validator_permit(client: ChainClient, netuid: int, hotkey: str, tempo: int) -> None:
    # Permits are handed out by the epoch: jump straight to the next epoch's block.
    uid = client.query("SubtensorModule", "Uids", [netuid, hotkey])
    for _ in range(2):
        head = client.finalized_number()
        jump_blocks(client, next_epoch_block(netuid, tempo, head) - head)
        permits = client.query("SubtensorModule", "ValidatorPermit", [netuid])
        if uid < len(permits) and permits[uid]:
            return
    raise ChainError(
        f"validator {hotkey} (uid {uid}) got no validator permit on netuid {netuid} after two "
        "epochs; check its stake and the subnet's max validators"
    )
