"""The diagnosis speaks for the findings, in DIAGNOSIS_PRIORITY order, and never re-judges evidence.

Sessions here are built by hand with exactly the findings under test (no analyzer, no rules),
so a diagnosis that looked at the evidence itself instead of the findings would show.
"""
from analyzer.deepgram.diagnosis import DIAGNOSIS_PRIORITY, diagnose
from analyzer.deepgram.messages import EMPTY_SHA256
from analyzer.model import (ERROR, WARNING, CloseFrame, DeepgramSummary, Finding, Gap, Handshake,
                            Session, SttMetadata)

T0 = 1699963200.0  # 2023-11-14 12:00:00 UTC
GAP = Finding("client-gap", WARNING, "gap", frames=[7, 9], time=T0 + 0.1,
              details={"seconds": 12.0, "after_frame": 7, "before_frame": 9, "ended_by": "frame"})
GAP_SENTENCE = ("The client sent nothing for 12.0 s after frame 7 (12:00:00.100); Deepgram closes a "
                "/v1/listen stream after 10 s without audio or a text message (NET-0001), so send "
                "KeepAlive as a text frame every 3-5 s (or silence) during pauses.")


def listen_session(findings=()) -> Session:
    s = Session(index=1, client="10.0.0.1:50000", server="10.0.0.2:443", tcp_stream=0,
                websocket=True, endpoint="listen",
                handshake=Handshake(path="/v1/listen", status=101, request_frame=4,
                                    response_frame=6, response_time=T0))
    s.deepgram = DeepgramSummary(detected=True)
    s.close.server = CloseFrame(1000, "", 20, T0 + 12.3)
    s.close.client = CloseFrame(1000, "", 21, T0 + 12.4)
    s.close.initiator = "server"
    s.findings = list(findings)
    return s


def test_a_finding_speaks_without_its_evidence():
    assert diagnose(listen_session([GAP])) == GAP_SENTENCE


def test_evidence_without_a_finding_says_nothing():
    # A 12 s gap and Metadata with the SHA-256 of empty input, but no rule reported them
    # (e.g. a threshold above 12 s): the diagnosis does not second-guess the rules.
    s = listen_session()
    s.gaps = [Gap("client", "any", T0 + 0.1, T0 + 12.1, 12.0, 7, 9)]
    s.deepgram.metadata = SttMetadata(18, T0 + 12.2, sha256=EMPTY_SHA256, duration=0.0)
    assert diagnose(s) == "Stream completed normally: Metadata, close 1000."


def test_the_first_finding_id_in_the_table_speaks():
    ids = [finding_id for finding_id, _ in DIAGNOSIS_PRIORITY]
    assert ids == ["proxy-refused", "handshake-cause", "handshake-failed", "handshake-unanswered",
                   "server-error", "deepgram-close", "close-code", "data-missing",
                   "abnormal-closure", "no-audio-received", "audio-undecodable",
                   "encrypted-net0001", "encrypted-server-closed", "encrypted-client-closed",
                   "client-gap", "audio-gap", "empty-binary-frame"]
    empty = Finding("empty-binary-frame", WARNING, "empty", frames=[8], time=T0 + 0.2,
                    details={"frame": 8})
    no_audio = Finding("no-audio-received", ERROR, "no audio", frames=[18], time=T0 + 12.2,
                       details={"sha256": EMPTY_SHA256, "duration": 0.0, "audio_chunks": 3,
                                "audio_bytes": 9600})
    # Listed in the reverse of their priority: the table decides, not the order of the rules.
    s = listen_session([empty, GAP, no_audio])
    assert diagnose(s) == ("Deepgram received no audio (its Metadata at frame 18 has the SHA-256 "
                           "of empty input) although the client sent 3 audio messages: send audio "
                           "on this socket after it opens.")
    s.findings = [empty, GAP]
    assert diagnose(s) == GAP_SENTENCE
    s.findings = [empty]
    assert diagnose(s) == ("The client sent an empty binary frame (frame 8 at 12:00:00.200), which "
                           "Deepgram treats as end of stream: skip zero-length audio chunks before "
                           "sending.")


def test_findings_outside_the_table_errors_first_then_warnings():
    warning = Finding("chunk-size", WARNING, "Audio chunks are large.")
    error = Finding("json-in-binary", ERROR, "JSON sent as binary")
    later = Finding("text-not-json", WARNING, "Text is not JSON.")
    assert diagnose(listen_session([warning, later, error])) == "JSON sent as binary."
    # Among warnings, OTHER_FINDINGS_PRIORITY: text-not-json before chunk-size.
    assert diagnose(listen_session([warning, later])) == "Text is not JSON."
    assert diagnose(listen_session([GAP, error])) == GAP_SENTENCE  # the table comes first


def test_missing_data_speaks_before_an_abnormal_closure_and_a_refused_proxy_first():
    missing = Finding("data-missing", WARNING, "Part of the session is missing from the capture: "
                      "418 bytes the server sent (1 gap, first at frame 83); server messages in "
                      "them are lost.", frames=[83])
    abnormal = Finding("abnormal-closure", ERROR, "abnormal", frames=[90])
    assert diagnose(listen_session([abnormal, missing])) == missing.message
    refused = Finding("proxy-refused", ERROR, "The proxy refused CONNECT h:443 with 407.")
    assert diagnose(listen_session([missing, refused])) == refused.message


# -- the order of findings does not depend on which rule module was imported first ----------

def _findings_of_dg_401(first_import: str) -> str:
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    code = (f"import {first_import}\n"
            "from analyzer.pipeline import analyze_capture\n"
            "from analyzer.report.summary import top_finding\n"
            "s = analyze_capture('captures/dg_401.pcap').sessions[0]\n"
            "print([f.id for f in s.findings], top_finding(s))")
    return subprocess.run([sys.executable, "-c", code], cwd=repo, env={"PYTHONPATH": str(repo)},
                          capture_output=True, text=True, timeout=60, check=True).stdout


def test_rule_order_is_fixed_whatever_is_imported_first():
    # handshake-cause and handshake-failed have the same severity and time (the 401 response).
    expected = "['handshake-cause', 'handshake-failed'] handshake-cause\n"
    assert _findings_of_dg_401("analyzer.findings.rules") == expected
    assert _findings_of_dg_401("analyzer.findings.deepgram_rules") == expected
    assert _findings_of_dg_401("analyzer.pipeline") == expected


def test_ties_in_the_report_follow_the_diagnosis_order():
    from analyzer.report.text import sorted_findings
    same_time = T0 + 1.0
    failed = Finding("handshake-failed", ERROR, "failed", frames=[4, 6], time=same_time)
    cause = Finding("handshake-cause", ERROR, "cause", frames=[6], time=same_time)
    unlisted_b = Finding("zz-unlisted", ERROR, "b", time=same_time)
    unlisted_a = Finding("aa-unlisted", ERROR, "a", time=same_time)
    no_closestream = Finding("no-closestream", ERROR, "c", time=same_time)
    earlier_warning = Finding("client-gap", WARNING, "gap", time=T0)
    ordered = sorted_findings([unlisted_b, earlier_warning, failed, no_closestream, unlisted_a, cause])
    assert [f.id for f in ordered] == ["handshake-cause", "handshake-failed", "no-closestream", "aa-unlisted",
                                       "zz-unlisted", "client-gap"]
