"""s.query over a recording a fake agent laid down."""

from __future__ import annotations

from fake_agent import demo_recording, tally


def test_trace_message_matches_what_the_code_wrote_and_says_how_it_was_sent():
    s = demo_recording(tally)
    cast = s.query.trace_message("{:add, _}")        # GenServer.cast(pid, {:add, n})
    assert cast["seq"].iloc[0] == 0 and cast.attrs["matched"] == "cast"
    assert list(cast["what"][:3]) == ["send", "receive", "handled"]
    assert cast["text"].iloc[2] == "handle_cast({:add, 2})"
    assert s.query.trace_message(":get").attrs["matched"] == "call"
    info = s.query.trace_message("{:add, 5}")         # send(pid, {:add, 5})
    assert info.attrs["matched"] == "send" and info["seq"].iloc[0] == 6
    # the whole message, spelled out, still matches: as the cast it is
    spelled = s.query.trace_message('{:"$gen_cast", {:add, _}}')
    assert spelled.attrs["matched"] == "cast" and spelled["seq"].iloc[0] == 0
    # the n-th match counts casts and plain sends alike
    assert s.query.trace_message("{:add, _}", which=1)["seq"].iloc[0] == 6
