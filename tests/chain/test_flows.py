"""Every chain flow on the real subtensor runtime (chopsticks), and how each one fails."""

from __future__ import annotations

import pytest

from actors.chain_watcher import ChainScanner
from chain.axon import serve_axon
from chain.client import ChainClient, DispatchFailed, ExtrinsicRejected
from chain.commitment import (
    commit_image,
    encode_fields,
    read_commitment,
    read_commitments,
)
from chain.localnet import LocalSubnet, dev_miner, jump_blocks
from chain.metagraph import read_metagraph
from chain.weights import WeightsRateLimited, read_weights, set_weights
from events.types import MinerRegistered, SubmissionCommitted, SubmissionRejected
from rules.image_ref import ImageRefError

pytestmark = pytest.mark.chain

DIGEST = "sha256:" + "5e" * 32


def ref(tag: str) -> str:
    return f"127.0.0.1:5000/arena/miner:{tag}@{DIGEST}"


def test_bootstrap_registers_miners_and_a_permitted_validator(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    neurons = {n.hotkey: n for n in read_metagraph(chain_client, local_subnet.netuid)}
    validator = neurons[local_subnet.validator.ss58_address]
    assert validator.validator_permit
    assert validator.stake > 0
    assert validator.coldkey == local_subnet.validator_coldkey.ss58_address
    for miner in local_subnet.miners:
        neuron = neurons[miner.ss58_address]
        assert neuron.coldkey == local_subnet.miner_coldkey.ss58_address
        assert neuron.last_update > 0
    assert sorted(n.uid for n in neurons.values()) == list(range(len(neurons)))


def test_commitment_lands_is_read_back_and_scanned_idempotently(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    miner = local_subnet.miners[0]
    result = commit_image(chain_client, miner, local_subnet.netuid, ref("first"))
    stored = read_commitment(chain_client, local_subnet.netuid, miner.ss58_address)
    assert stored is not None and stored.block == result.block
    assert str(stored.parse()) == ref("first")
    assert stored in read_commitments(chain_client, local_subnet.netuid)

    scanner = ChainScanner(chain_client, local_subnet.netuid)
    events = scanner.scan_block(result.block)
    assert events == [
        SubmissionCommitted(
            netuid=local_subnet.netuid,
            uid=chain_client.query(
                "SubtensorModule", "Uids", [local_subnet.netuid, miner.ss58_address]
            ),
            hotkey=miner.ss58_address,
            block=result.block,
            image="127.0.0.1:5000/arena/miner:first",
            digest=DIGEST,
        )
    ]
    rescanned = scanner.scan(result.block - 1, result.block)
    assert [e for e in rescanned if e.block == result.block] == events  # same events, same keys
    assert {e.key for e in events} <= {e.key for e in scanner.snapshot(result.block)}


def test_second_commitment_within_rate_limit_fails_by_name_then_supersedes(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    miner = local_subnet.miners[1]
    first = commit_image(chain_client, miner, local_subnet.netuid, ref("one"))
    with pytest.raises(DispatchFailed) as info:
        commit_image(chain_client, miner, local_subnet.netuid, ref("two"))
    assert info.value.error == "Commitments.CommitmentSetRateLimitExceeded"

    rate_limit = chain_client.constant("Commitments", "RateLimit")
    jump_blocks(chain_client, rate_limit)
    second = commit_image(chain_client, miner, local_subnet.netuid, ref("two"))
    assert second.block >= first.block + rate_limit
    events = ChainScanner(chain_client, local_subnet.netuid).scan_block(second.block)
    assert [(e.hotkey, e.block, e.image) for e in events] == [
        (miner.ss58_address, second.block, "127.0.0.1:5000/arena/miner:two")
    ]


def test_unregistered_hotkey_cannot_commit(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    with pytest.raises(DispatchFailed) as info:
        commit_image(chain_client, local_subnet.outsider, local_subnet.netuid, ref("x"))
    assert info.value.error == "Commitments.AccountNotAllowedCommit"
    assert info.value.result.block > 0


def test_malformed_payload_is_refused_locally_and_rejected_by_the_scanner(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    with pytest.raises(ImageRefError):
        commit_image(chain_client, local_subnet.miners[2], local_subnet.netuid, "not a ref")
    # A miner that bypasses the parser still gets its payload on chain: the watcher rejects it.
    call = chain_client.compose_call(
        "Commitments",
        "set_commitment",
        {"netuid": local_subnet.netuid, "info": encode_fields(b"ghcr.io/m:latest")},
    )
    result = chain_client.submit(call, local_subnet.miners[2])
    events = ChainScanner(chain_client, local_subnet.netuid).scan_block(result.block)
    assert len(events) == 1 and isinstance(events[0], SubmissionRejected)
    assert events[0].raw == "ghcr.io/m:latest"
    assert "missing '@sha256" in events[0].reason


def test_oversize_payload_is_refused_locally_and_on_chain(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    with pytest.raises(ImageRefError, match="at most 128"):
        commit_image(chain_client, local_subnet.miners[3], local_subnet.netuid, ref("t" * 100))
    # More than one Raw field is the only way to put more than 128 bytes: the chain refuses it.
    fields = [{"Raw128": "0x" + "61" * 128}, {"Raw10": "0x" + "61" * 10}]
    call = chain_client.compose_call(
        "Commitments",
        "set_commitment",
        {"netuid": local_subnet.netuid, "info": {"fields": [fields]}},
    )
    # The runtime refuses it in validation (MaxFields is 1), so it never reaches a block.
    head = chain_client.finalized_number()
    with pytest.raises(ExtrinsicRejected):
        chain_client.submit(call, local_subnet.miners[3])
    assert chain_client.finalized_number() == head
    assert (
        read_commitment(chain_client, local_subnet.netuid, local_subnet.miners[3].ss58_address)
        is None
    )


def test_bad_signature_is_rejected_before_inclusion(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    miner = local_subnet.miners[3]
    call = chain_client.compose_call(
        "Commitments",
        "set_commitment",
        {"netuid": local_subnet.netuid, "info": encode_fields(ref("sig").encode())},
    )
    # Signed payload of the miner, signature of someone else.
    forged = chain_client.substrate.create_signed_extrinsic(
        call=call, keypair=miner, signature=local_subnet.outsider.sign(b"not the payload")
    )
    head = chain_client.finalized_number()
    with pytest.raises(ExtrinsicRejected, match="badProof"):
        chain_client.submit_extrinsic(forged)
    assert chain_client.finalized_number() == head


def test_validator_sets_weights_and_the_rate_limit_is_honoured(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    netuid = local_subnet.netuid
    validator = local_subnet.validator
    king = chain_client.query(
        "SubtensorModule", "Uids", [netuid, local_subnet.miners[0].ss58_address]
    )
    result = set_weights(chain_client, validator, netuid, {king: 1.0})
    assert result.uids == [king] and result.weights == [65535]
    assert read_weights(chain_client, netuid, validator.ss58_address) == {king: 65535.0}
    uid = chain_client.query("SubtensorModule", "Uids", [netuid, validator.ss58_address])
    assert chain_client.query("SubtensorModule", "LastUpdate", [netuid])[uid] == result.block

    sudo = local_subnet.sudo
    set_limit = chain_client.compose_call(
        "AdminUtils",
        "sudo_set_weights_set_rate_limit",
        {"netuid": netuid, "weights_set_rate_limit": 1000},
    )
    chain_client.sudo(set_limit, sudo)
    try:
        with pytest.raises(WeightsRateLimited) as info:
            set_weights(chain_client, validator, netuid, {king: 1.0})
        assert 0 < info.value.blocks_left <= 1000
    finally:
        chain_client.sudo(
            chain_client.compose_call(
                "AdminUtils",
                "sudo_set_weights_set_rate_limit",
                {
                    "netuid": netuid,
                    "weights_set_rate_limit": local_subnet.params.weights_set_rate_limit,
                },
            ),
            sudo,
        )
    # Leave no weight on a miner: other areas' tests expect to be the ones that set them.
    set_weights(chain_client, validator, netuid, {uid: 1.0})


def test_weights_from_a_hotkey_without_stake_are_refused(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    # Spec 218 gates set_weights on WeightsMinStake (checked in transaction validation), not
    # on the validator permit, which every neuron of a subnet this small gets.
    miner = local_subnet.miners[1]
    neuron = next(
        n
        for n in read_metagraph(chain_client, local_subnet.netuid)
        if n.hotkey == miner.ss58_address
    )
    assert neuron.stake == 0
    # The runtime's transaction validation refuses it before inclusion (custom code 3).
    head = chain_client.finalized_number()
    with pytest.raises(ExtrinsicRejected, match="custom"):
        set_weights(chain_client, miner, local_subnet.netuid, {0: 1.0})
    assert chain_client.finalized_number() == head
    assert read_weights(chain_client, local_subnet.netuid, miner.ss58_address) == {}


def test_sudo_reports_the_inner_error(local_subnet: LocalSubnet, chain_client: ChainClient) -> None:
    call = chain_client.compose_call("AdminUtils", "sudo_set_tempo", {"netuid": 9999, "tempo": 5})
    with pytest.raises(DispatchFailed) as info:
        chain_client.sudo(call, local_subnet.sudo)
    assert info.value.error == "AdminUtils.SubnetDoesNotExist"


def test_serve_axon_refuses_loopback_and_publishes_a_public_address(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    miner = local_subnet.miners[2]
    with pytest.raises(DispatchFailed) as info:
        serve_axon(chain_client, miner, local_subnet.netuid, "127.0.0.1", 8000)
    assert info.value.error == "SubtensorModule.InvalidIpAddress"
    # 203.0.113.0/24 is documentation space: published, never contacted.
    serve_axon(chain_client, miner, local_subnet.netuid, "203.0.113.7", 8443)
    neuron = next(
        n
        for n in read_metagraph(chain_client, local_subnet.netuid)
        if n.hotkey == miner.ss58_address
    )
    assert neuron.axon is not None
    assert (neuron.axon.ip, neuron.axon.port) == ("203.0.113.7", 8443)


def test_new_registration_is_scanned_with_its_coldkey(
    local_subnet: LocalSubnet, chain_client: ChainClient
) -> None:
    newcomer = dev_miner(len(local_subnet.miners))
    call = chain_client.compose_call(
        "SubtensorModule",
        "burned_register",
        {"netuid": local_subnet.netuid, "hotkey": newcomer.ss58_address},
    )
    result = chain_client.submit(call, local_subnet.miner_coldkey)
    events = ChainScanner(chain_client, local_subnet.netuid).scan_block(result.block)
    assert len(events) == 1 and isinstance(events[0], MinerRegistered)
    assert events[0].hotkey == newcomer.ss58_address
    assert events[0].coldkey == local_subnet.miner_coldkey.ss58_address
    assert events[0].block == result.block
