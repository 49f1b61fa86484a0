"""The node's own log as evidence: error lines join the causes of the processes
they are about, and a supervisor's report that it gave up is a cause when the
recorded lives do not show it."""

from __future__ import annotations

from fake_otp import Scene, crash, pid, row
from microscope_jupyter.analysis.causes import find_causes
from microscope_jupyter.analysis.supervision import gave_up
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store.schema import LOG_LEVELS

SUP, W1, OTHER = pid(11), pid(12), pid(13)
SUPERVISOR_MFA = (Atom("supervisor"), Atom("restart"), 2)
BADMATCH = crash((Atom("badmatch"), 2), "ledger", "handle_cast", 2)


def log(scene: Scene, who, level: str, text: str, at: float, peer=None, mfa=None, **summary):
    scene.at("log", who, at, peer=peer, mfa=mfa, aux=LOG_LEVELS.index(level),
             payload=(Atom(level), text.encode(), {Atom(k): v for k, v in summary.items()}))


def supervisor_report(scene: Scene, context: str, reason, child, at: float) -> None:
    log(scene, SUP, "error", f"Supervisor: {{local,ledger_sup}}. Context: {context}.", at,
        peer=child, mfa=SUPERVISOR_MFA, label=(Atom("supervisor"), Atom(context)),
        supervisor=(Atom("local"), Atom("ledger_sup")), context=Atom(context), reason=reason,
        child_id=Atom("ledger"))


def test_error_lines_about_a_crashed_process_join_its_cause():
    scene = Scene([(W1, "ledger"), (OTHER, "other")], [row(W1, "ledger", None)])
    log(scene, W1, "info", "deposit 3", at=1)
    log(scene, W1, "error", "sent 3, table says 2", at=2)
    log(scene, OTHER, "error", "not about the ledger", at=2.5)
    log(scene, W1, "error", "crasher: ledger", at=3, label=(Atom("proc_lib"), Atom("crash")))
    scene.exit(W1, BADMATCH, at=3.1, name="ledger")
    supervisor_report(scene, "child_terminated", Atom("badmatch"), W1, at=3.2)
    facts = scene.session().facts
    seqs = {text: int(seq) for seq, text in zip(facts.events["seq"], facts.events["text"])}
    crashed = [c for c in find_causes(facts) if c.kind == "crash_restart"]
    assert len(crashed) == 1
    evidence = set(crashed[0].evidence)
    assert {seqs["error: sent 3, table says 2"], seqs["error: crasher: ledger"]} <= evidence
    # the supervisor's report names the child (its peer): about it too
    assert any(str(t).startswith("error: Supervisor") and s in evidence for t, s in seqs.items())
    assert seqs["info: deposit 3"] not in evidence
    assert seqs["error: not about the ledger"] not in evidence


def test_a_supervisor_that_says_it_gave_up_is_a_cause_when_its_life_was_not_recorded():
    # only the children were traced: the supervisor is known by its reports alone
    scene = Scene([(W1, "ledger")], [row(W1, "ledger", None)])
    scene.exit(W1, BADMATCH, at=1, name="ledger")
    supervisor_report(scene, "child_terminated", Atom("badmatch"), W1, at=1.1)
    again = pid(20)
    scene.exit(again, BADMATCH, at=2)
    supervisor_report(scene, "child_terminated", Atom("badmatch"), again, at=2.1)
    supervisor_report(scene, "shutdown", Atom("reached_max_restart_intensity"), again, at=2.2)
    causes = gave_up(scene.session().facts)
    assert len(causes) == 1 and causes[0].kind == "restart_intensity"
    text = causes[0].summary
    assert text.startswith("ledger_sup reached its restart intensity and gave up, as its own "
                           "supervisor report says (reached_max_restart_intensity, seq ")
    assert "it reported 2 child failure(s) within its period before" in text
    assert "then its child :ledger failed again" in text
    assert len(causes[0].evidence) == 3


def test_a_giving_up_the_lives_show_is_told_once_with_its_report_as_evidence():
    scene = Scene([(SUP, "ledger_sup"), (W1, "ledger")],
                  [row(SUP, "ledger_sup", None, "supervisor"), row(W1, "ledger", SUP)])
    scene.exit(W1, BADMATCH, at=1, name="ledger")
    new = pid(20)
    scene.start(SUP, new, "ledger", at=1.1)
    scene.ack(new, SUP, at=1.2)
    scene.exit(new, BADMATCH, at=2, name="ledger")
    supervisor_report(scene, "shutdown", Atom("reached_max_restart_intensity"), new, at=2.05)
    scene.exit(SUP, Atom("shutdown"), at=2.1, name="ledger_sup")
    facts = scene.session().facts
    intensity = [c for c in find_causes(facts) if c.kind == "restart_intensity"]
    assert len(intensity) == 1
    assert intensity[0].summary.startswith("ledger_sup reached its restart intensity and gave "
                                           "up: its children failed 2 times")
    report = int(facts.events.loc[facts.events["kind"] == "log", "seq"].iloc[0])
    assert report in intensity[0].evidence


def test_a_recording_without_logs_is_unchanged():
    scene = Scene([(W1, "ledger")], [row(W1, "ledger", None)])
    scene.exit(W1, BADMATCH, at=1, name="ledger")
    facts = scene.session().facts
    crashed = [c for c in find_causes(facts) if c.kind == "crash_restart"]
    assert crashed and crashed[0].evidence == [0]
