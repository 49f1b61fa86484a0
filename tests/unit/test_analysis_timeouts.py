"""Timeouts that travel: a cascade through nested calls and a late reply that
crashes handle_info, from hand-built recordings, with the healthy patterns
they resemble."""

from __future__ import annotations

from fake_otp import Scene, alias, pid, ref
from microscope_jupyter.analysis.timeouts import cascading_timeouts, late_replies
from microscope_jupyter.analysis.waits import gave_up_waiting
from microscope_jupyter.beam.terms import Atom

WEB, API, ORDERS, STOCK = pid(10), pid(11), pid(12), pid(13)
NAMES = [(API, "api"), (ORDERS, "orders"), (STOCK, "stock")]


def chain(stock_ms: float, timeout_ms: float = 1000) -> Scene:
    """web calls api, api calls orders from its handle_call, orders calls stock
    from its; stock takes ``stock_ms``; each layer waits ``timeout_ms``."""
    scene = Scene(NAMES)
    place = scene.call(WEB, API, (Atom("place"), 1), tag=1, at=0)
    create = scene.call(API, ORDERS, (Atom("create"), 1), tag=2, at=0.1)
    reserve = scene.call(ORDERS, STOCK, (Atom("reserve"), 1), tag=3, at=0.2)
    done = 0.2 + stock_ms
    if stock_ms > timeout_ms:
        scene.at("timeout", WEB, timeout_ms)
        scene.at("timeout", API, 0.1 + timeout_ms)
        scene.at("timeout", ORDERS, 0.2 + timeout_ms)
        scene.reply(API, WEB, 1, (Atom("error"), Atom("timeout")), at=0.1 + timeout_ms + 0.05,
                    received=False)
        scene.reply(ORDERS, API, 2, (Atom("error"), Atom("timeout")),
                    at=0.2 + timeout_ms + 0.05, received=False)
        scene.callback(ORDERS, create, at=0.2 + timeout_ms + 0.06, took_ms=timeout_ms)
        scene.reply(STOCK, ORDERS, 3, Atom("ok"), at=done)
        scene.callback(STOCK, reserve, at=done + 0.01, took_ms=stock_ms)
        late = (alias(3), Atom("ok"))
        scene.callback(ORDERS, late, at=done + 0.05, took_ms=0.01)    # handle_info
    else:
        scene.reply(STOCK, ORDERS, 3, Atom("ok"), at=done)
        scene.callback(STOCK, reserve, at=done + 0.01, took_ms=stock_ms)
        scene.reply(ORDERS, API, 2, Atom("ok"), at=done + 0.1)
        scene.callback(ORDERS, create, at=done + 0.11, took_ms=stock_ms)
        scene.reply(API, WEB, 1, Atom("ok"), at=done + 0.2)
        scene.callback(API, place, at=done + 0.21, took_ms=stock_ms)
    return scene


def test_one_slow_call_times_out_at_every_layer():
    causes = cascading_timeouts(chain(stock_ms=1200).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes == ["stock", "orders", "api", str(WEB)]
    assert text.startswith("One slow call timed out at every layer of a chain of calls: stock "
                           "took 1,200 ms to answer {:reserve, 1}")
    assert "orders was waiting for it inside its own callback and gave up after 1,000 ms" in text
    assert "api, calling orders, gave up after 1,000 ms" in text
    assert f"{WEB}, calling api, gave up after 1,000 ms" in text
    assert "a cascade" in text
    assert "stock's reply came 200 ms after orders had stopped waiting" in text
    assert "as an unexpected message, handled by handle_info" in text


def test_nested_calls_answered_in_time_are_fine():
    scene = chain(stock_ms=30)
    assert gave_up_waiting(scene.session().facts) == []
    assert cascading_timeouts(chain(stock_ms=30).session().facts) == []


def test_one_call_that_timed_out_is_no_cascade():
    scene = Scene(NAMES)
    scene.call(WEB, STOCK, (Atom("reserve"), 1), tag=1, at=0)
    scene.at("timeout", WEB, 1000)
    scene.reply(STOCK, WEB, 1, Atom("ok"), at=1200, received=False)
    facts = scene.session().facts
    assert [w.waited_ms for w in gave_up_waiting(facts)] == [1000.0]
    assert cascading_timeouts(facts) == []


def relayed(others_time_out: bool) -> Scene:
    """api calls orders, orders calls stock; orders gives up on stock and answers
    api at once with the error (api's own timeout never fires). Meanwhile other
    callers of orders may time out too, queued behind (the same timeout all the way up)."""
    scene = Scene(NAMES)
    scene.call(API, ORDERS, (Atom("create"), 1), tag=2, at=0)
    reserve_call = scene.call(ORDERS, STOCK, (Atom("reserve"), 1), tag=3, at=0.1)
    if others_time_out:
        for n, caller in enumerate((pid(20), pid(21))):
            scene.call(caller, ORDERS, (Atom("status"), n), tag=10 + n, at=5 + n)
            scene.at("timeout", caller, 1005 + n)
    scene.at("timeout", ORDERS, 1000.1)
    scene.reply(ORDERS, API, 2, (Atom("error"), Atom("timeout")), at=1000.15)
    scene.reply(STOCK, ORDERS, 3, Atom("ok"), at=1200)
    scene.callback(STOCK, reserve_call, at=1200.01, took_ms=1200)
    return scene


def test_a_failure_passed_up_as_a_reply_is_a_layer_of_the_cascade():
    causes = cascading_timeouts(relayed(others_time_out=True).session().facts)
    assert len(causes) == 1, causes
    text = causes[0].summary
    assert "orders was waiting for it inside its own callback and gave up after 1,000 ms" in text
    assert "api, calling orders, got the failure back as the answer 1,000 ms later" in text


def test_one_timeout_answered_with_an_error_is_handling_not_a_cascade():
    assert cascading_timeouts(relayed(others_time_out=False).session().facts) == []


def test_a_reply_taken_before_a_sleep_is_no_timeout():
    # reply_from_worker: the answer comes (from a worker), then the caller sleeps
    scene = Scene(NAMES)
    scene.call(WEB, API, Atom("render"), tag=1, at=0)
    scene.reply(pid(30), WEB, 1, Atom("ok"), at=1)
    scene.at("timeout", WEB, 4)
    assert gave_up_waiting(scene.session().facts) == []


# -- late replies

FX, BACKEND = pid(20), pid(21)


def fx_scene(message) -> Scene:
    scene = Scene([(FX, "fx"), (BACKEND, "backend")])
    request = (Atom("rate"), FX, ref(9), Atom("usd"))
    scene.at("send", FX, 0, peer=BACKEND, payload=request)
    scene.at("timeout", FX, 100)
    scene.at("send", BACKEND, 300, peer=FX, payload=(ref(9), 1.62))
    scene.at("receive", FX, 300.1, payload=message)
    reason = (Atom("function_clause"),
              [(Atom("fx"), Atom("handle_info"), [message, {}], [(Atom("line"), 9)])])
    scene.exit(FX, reason, at=301, name="fx")
    return scene


def test_a_late_reply_that_handle_info_has_no_clause_for():
    causes = late_replies(fx_scene((ref(9), 1.62)).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes == ["fx"]
    assert text.startswith("fx crashed on a late reply: it sent {:rate, ")
    assert "and stopped waiting after 100 ms (its receive ... after fired" in text
    assert "arrived 300 ms after the request" in text
    assert "handed it to handle_info/2, which has no clause for it: function_clause" in text


def test_a_function_clause_on_another_message_is_no_late_reply():
    assert late_replies(fx_scene((Atom("refresh"), 1)).session().facts) == []
