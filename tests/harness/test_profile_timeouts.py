"""Timeouts come from the profile: a measurement fails a silent stream after its stall timeout."""

from __future__ import annotations

import msgspec

from harness.measure import measure
from harness.plan import plan_measurement
from harness.profile import get_profile
from tests.harness.test_aiohttp_transport import _chunk, _read_request, serve
from tests.harness.test_sse import _event

FIRST_TOKEN = _event("a", [1], [-0.1])


async def test_a_stream_silent_past_the_profiles_stall_timeout_is_a_stall() -> None:
    profile = msgspec.structs.replace(
        get_profile("local"),
        num_prompts=1,
        warmup_requests=0,
        concurrency_levels=(1,),
        passes=1,
        request_timeout_s=60.0,  # far longer: only the stall timeout can end the request
        stall_timeout_s=0.2,
    )

    async def one_token_then_silence(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + _chunk(FIRST_TOKEN))
        await writer.drain()
        await reader.read()  # silent until the client gives up and closes
        writer.close()

    async with serve(one_token_then_silence) as url:
        measurement = await measure(url, profile, plan_measurement("0x00", 0, profile))
    (result,) = measurement.failed()
    assert result.error_code == "stall", result.error


def test_sn_h200_timeouts_are_its_own() -> None:
    local, h200 = get_profile("local"), get_profile("sn-h200")
    for field in ("startup_timeout_s", "request_timeout_s", "stall_timeout_s"):
        assert getattr(h200, field) > getattr(local, field), field
