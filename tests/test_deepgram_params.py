"""Endpoints by path, query parameters against Deepgram's rules, handshake causes."""
import pytest

from analyzer.deepgram.endpoints import (endpoint_for_path, endpoint_for_server_type,
                                         is_deepgram_host)
from analyzer.deepgram.params import check_params, find_credentials, handshake_cause
from tests.support.deepgram_session import TEST_KEY, handshake

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiZXhwIjoxNzAwMDAwMDAwfQ"
       ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THab12")


@pytest.mark.parametrize("path,endpoint", [
    ("/v1/listen", "listen"), ("/v1/listen/", "listen"), ("/V1/Listen", "listen"),
    ("/v2/listen", "listen-v2"), ("/v1/speak", "speak"), ("/v1/speak/", "speak"),
    ("/v2/speak", "speak-v2"), ("/proxy/v2/speak", "speak-v2"),
    ("/v1/agent/converse", "agent"), ("/agent", "agent"), ("/agent/", "agent"),
    ("/proxy/deepgram/v1/listen", "listen"), ("/v1/listen?model=nova-3", "listen"),
    ("/my/agent", "other"), ("/v1/listening", "other"), ("/", "other"), ("", "other"),
    (None, "other"),
])
def test_endpoint_for_path(path, endpoint):
    assert endpoint_for_path(path) == endpoint


def test_endpoint_from_server_type_and_host():
    assert endpoint_for_server_type("TurnInfo") == "listen-v2"
    assert endpoint_for_server_type("Cleared") == "speak"
    assert endpoint_for_server_type("SessionMetadata") == "speak-v2"
    # Sent by more than one API: they decide nothing (Flux STT and Flux TTS send
    # Connected; both TTS versions send Flushed; /v2/speak sends SpeechStarted too).
    for shared in ("Flushed", "Connected", "SpeechStarted", "ConfigureSuccess", "Error"):
        assert endpoint_for_server_type(shared) is None, shared
    assert endpoint_for_server_type("Metadata") is None  # both STT and TTS send it
    assert is_deepgram_host("api.deepgram.com")
    assert is_deepgram_host("agent.deepgram.com:443")
    assert not is_deepgram_host("deepgram.com.evil.example")
    assert not is_deepgram_host("[2001:db8::1]:443")


def ids(problems):
    return [(p.id, p.severity, p.param) for p in problems]


def test_raw_encoding_needs_sample_rate():
    problems = check_params("listen", {"encoding": "linear16"})
    assert ids(problems) == [("param-invalid", "error", "sample_rate")]
    assert problems[0].message == ("encoding=linear16 is raw audio without a header, so "
                                   "sample_rate is required; add sample_rate=<Hz of the audio>")
    assert problems[0].breaks == "audio"
    assert check_params("listen", {"encoding": "linear16", "sample_rate": "16000"}) == []


@pytest.mark.parametrize("encoding", ["linear32", "alaw", "mulaw", "amr-nb", "amr-wb", "opus",
                                      "speex", "g729"])
def test_every_raw_encoding_needs_sample_rate(encoding):
    assert ids(check_params("listen", {"encoding": encoding})) == [
        ("param-invalid", "error", "sample_rate")]


def test_containerised_encodings_need_no_rate():
    assert check_params("listen", {"encoding": "flac"}) == []
    assert check_params("listen", {"encoding": "ogg-opus"}) == []


def test_amr_rates():
    p = check_params("listen", {"encoding": "amr-nb", "sample_rate": "16000"})
    assert ids(p) == [("param-invalid", "error", "sample_rate")]
    assert p[0].message == "encoding=amr-nb must be sent at 8000 Hz, not sample_rate=16000"
    assert check_params("listen", {"encoding": "amr-wb", "sample_rate": "16000"}) == []
    assert ids(check_params("listen", {"encoding": "amr-wb", "sample_rate": "8000"})) == [
        ("param-invalid", "error", "sample_rate")]


def test_utterance_end_needs_interim_results():
    p = check_params("listen", {"utterance_end_ms": "1000"})
    assert ids(p) == [("param-invalid", "warning", "utterance_end_ms")]
    assert check_params("listen", {"utterance_end_ms": "1000", "interim_results": "true"}) == []
    assert ids(check_params("listen", {"utterance_end_ms": "1000", "interim_results": "false"})) == [
        ("param-invalid", "warning", "utterance_end_ms")]


def test_flux_model_only_on_v2():
    p = check_params("listen", {"model": "flux-general-en"})
    assert ids(p) == [("param-invalid", "error", "model")]
    assert "only works on /v2/listen" in p[0].message
    assert check_params("listen-v2", {"model": "flux-general-en", "encoding": "linear16",
                                      "sample_rate": "16000"}) == []
    p = check_params("listen-v2", {"model": "nova-3"})
    assert ids(p) == [("param-invalid", "error", "model")]
    assert p[0].message == ("model=nova-3 is not a Flux model; /v2/listen serves flux-general-en "
                            "and flux-general-multi, other models use /v1/listen")


def test_booleans_must_be_lower_case():
    p = check_params("listen", {"mip_opt_out": "False", "punctuate": "true", "smart_format": "1"})
    # The spec's enums are lower-case; rejection of `False` is unconfirmed: a warning.
    assert ids(p) == [("param-invalid", "warning", "mip_opt_out"),
                      ("param-invalid", "warning", "smart_format")]
    assert p[0].message == ("mip_opt_out=False is not a boolean as the API spec writes them "
                            "(lower-case true/false; whether Deepgram rejects other spellings is "
                            "unconfirmed); use mip_opt_out=false")
    assert p[0].breaks == "handshake"
    assert p[1].message.endswith("use smart_format=true or smart_format=false")


def test_language_must_be_a_code():
    p = check_params("listen", {"language": "english"})
    assert [x.message for x in p] == [
        "language=english is not a language code; use e.g. en or en-US"]
    assert check_params("listen", {"language": "en-US"}) == []
    assert check_params("listen", {"language": "multi"}) == []
    assert check_params("listen", {"language": "pt-BR"}) == []
    assert "BCP-47" in check_params("listen", {"language": "klingon"})[0].message


def test_numbers_and_encoding_names():
    p = check_params("listen", {"encoding": "LINEAR16", "sample_rate": "16k", "channels": "0",
                                "endpointing": "soon"})
    assert ids(p) == [("param-invalid", "error", "channels"),
                      ("param-invalid", "error", "sample_rate"),
                      ("param-invalid", "error", "endpointing"),
                      ("param-invalid", "error", "encoding")]
    assert p[3].message == "encoding=LINEAR16 is not a Deepgram encoding; use encoding=linear16"
    assert check_params("listen", {"endpointing": "300"}) == []
    assert check_params("listen", {"endpointing": "false"}) == []


def test_unknown_parameters_are_listed_as_info():
    p = check_params("listen", {"model": "nova-3", "Encoding": "linear16", "punctuation": "true"})
    assert ids(p) == [("param-unknown", "info", "Encoding,punctuation")]
    assert p[0].message == ("Deepgram does not document these parameters for this endpoint: "
                            "Encoding, punctuation (misspelt, or meant for another endpoint)")
    # a Flux-only parameter on /v1/listen is unknown there
    assert ids(check_params("listen", {"eot_threshold": "0.7"})) == [
        ("param-unknown", "info", "eot_threshold")]
    # the agent is configured by Settings: its query is not checked
    assert check_params("agent", {"anything": "x"}) == []
    assert check_params("other", {"encoding": "linear16"}) == []


def test_speak_params():
    assert check_params("speak", {"model": "aura-2-thalia-en", "encoding": "linear16",
                                  "sample_rate": "24000"}) == []
    p = check_params("speak", {"encoding": "linear32", "sample_rate": "22050"})
    assert ids(p) == [("param-invalid", "error", "encoding")]
    assert p[0].message == ("encoding=linear32 is not an encoding /v1/speak accepts; use one of "
                            "alaw, linear16, mulaw")
    # linear16 rates 8000|16000|24000|32000|48000 (32000 is valid), speed exists.
    assert check_params("speak", {"encoding": "linear16", "sample_rate": "32000", "speed": "1.2"}) == []
    p = check_params("speak", {"encoding": "linear16", "sample_rate": "44100"})
    assert ids(p) == [("param-invalid", "warning", "sample_rate")]
    assert p[0].message == ("sample_rate=44100 is not offered for linear16 on the text-to-speech "
                            "WebSocket (8000, 16000, 24000, 32000, 48000)")
    assert ids(check_params("speak", {"encoding": "mulaw", "sample_rate": "24000"})) == [
        ("param-invalid", "warning", "sample_rate")]


def test_speak_websocket_takes_no_compressed_encoding_and_no_rest_params():
    p = check_params("speak", {"encoding": "mp3", "sample_rate": "44100"})
    assert ids(p) == [("param-invalid", "error", "encoding")]
    assert p[0].message == ("encoding=mp3 is REST-only: the text-to-speech WebSocket takes "
                            "linear16, mulaw or alaw")
    assert p[0].breaks == "handshake"
    p = check_params("speak", {"container": "wav", "bit_rate": "48000",
                               "callback": "https://example.com/cb"})
    assert ids(p) == [("param-invalid", "warning", "bit_rate"),
                      ("param-invalid", "warning", "callback"),
                      ("param-invalid", "warning", "container")]
    assert p[0].message == ("bit_rate is a REST-only parameter of Aura text-to-speech; the "
                            "WebSocket does not document it (what it does with it is unconfirmed)")
    # tag is not a /v1/speak parameter (it is one of /v2/speak)
    assert ids(check_params("speak", {"tag": "x"})) == [("param-unknown", "info", "tag")]


def test_flux_params():
    ok = {"model": "flux-general-multi", "encoding": "linear16", "sample_rate": "16000",
          "eot_threshold": "0.7", "eager_eot_threshold": "0.5", "eot_timeout_ms": "5000",
          "keyterm": ["a", "b"], "language_hint": ["de", "fr"], "numerals": "true",
          "profanity_filter": "false", "redact": "numbers", "mip_opt_out": "true", "tag": "t"}
    assert check_params("listen-v2", ok) == []
    # 1.0 switches native end-of-turn off (cl:2026/8/28) although one page says 0.9.
    assert check_params("listen-v2", {**ok, "eot_threshold": "1.0", "eager_eot_threshold": "0.9"}) == []
    # model is required
    p = check_params("listen-v2", {"encoding": "linear16", "sample_rate": "16000"})
    assert ids(p) == [("param-invalid", "error", "model")]
    assert p[0].message == "model is required on /v2/listen (flux-general-en, flux-general-multi)"
    # encodings: the six raw ones only (containers need no encoding)
    p = check_params("listen-v2", {"model": "flux-general-en", "encoding": "flac", "sample_rate": "16000"})
    assert ids(p) == [("param-invalid", "error", "encoding")]
    assert ids(check_params("listen-v2", {"model": "flux-general-en", "encoding": "linear16"})) == [
        ("param-invalid", "error", "sample_rate")]
    assert ids(check_params("listen-v2", {"model": "flux-general-en", "encoding": "linear16",
                                          "sample_rate": "22050"})) == [("param-invalid", "error", "sample_rate")]
    # ranges
    p = check_params("listen-v2", {"model": "flux-general-en", "eot_threshold": "0.4",
                                   "eager_eot_threshold": "0.95", "eot_timeout_ms": "70000"})
    assert ids(p) == [("param-invalid", "error", "eot_timeout_ms"),
                      ("param-invalid", "error", "eager_eot_threshold"),
                      ("param-invalid", "error", "eot_threshold"),
                      ("param-invalid", "error", "eager_eot_threshold")]
    assert p[0].message == ("eot_timeout_ms=70000 is outside the documented range 500-60000 (the "
                            "Flux Configure page gives 500-10000 instead (a documentation "
                            "contradiction))")
    assert p[3].message == ("eager_eot_threshold=0.95 is above eot_threshold=0.4; it must be <= "
                            "eot_threshold or the request fails")
    # language_hint only with flux-general-multi; redact numbers|aggressive_numbers only
    p = check_params("listen-v2", {"model": "flux-general-en", "language_hint": "de", "redact": "pci"})
    assert ids(p) == [("param-invalid", "error", "redact"), ("param-invalid", "warning", "language_hint")]
    assert ids(check_params("listen-v2", {"model": "flux"})) == [("param-invalid", "error", "model")]


def test_speak_v2_params():
    assert check_params("speak-v2", {"model": "flux-thalia-en", "encoding": "linear16",
                                     "sample_rate": "44100", "speed": "1.4",
                                     "expressivity": "-1", "tag": "x"}) == []
    p = check_params("speak-v2", {"model": "aura-2-thalia-en"})
    assert ids(p) == [("param-invalid", "error", "model")]
    assert ids(check_params("speak-v2", {})) == [("param-invalid", "error", "model")]
    # speed 0.85-1.15 in 0.05 steps before 2026-09-14, 0.5-1.5 from then (cl:2026/9/14)
    before, after = 1788000000.0, 1790000000.0
    q = {"model": "flux-thalia-en", "speed": "1.4"}
    assert ids(check_params("speak-v2", q, before)) == [("param-invalid", "warning", "speed")]
    assert check_params("speak-v2", q, after) == []
    assert ids(check_params("speak-v2", {**q, "speed": "0.93"}, before)) == [
        ("param-invalid", "warning", "speed")]


def test_repeated_parameters_use_the_first_value():
    assert check_params("listen", {"keyterm": ["a", "b"], "encoding": ["linear16"],
                                   "sample_rate": ["8000"]}) == []


# --- handshake causes -----------------------------------------------------------

def cause(**kw):
    hs = handshake(**kw)
    from analyzer.deepgram.endpoints import endpoint_for_path
    return handshake_cause(hs, endpoint_for_path(hs.path))


def test_101_has_no_cause():
    assert cause(query={"model": "nova-3"}) is None


def test_400_language_english():
    c = cause(query={"model": "nova-3", "language": "english"}, status=400,
              dg_error="Failed to deserialize query parameters: unknown variant `english`")
    assert (c.what, c.param) == ("param:language", "language")
    assert c.message == "language=english is not a language code; use e.g. en or en-US"
    assert c.request_id == "0b6a9c33-1111-4222-8333-944455556666"


def test_400_flux_on_v1():
    c = cause(query={"model": "flux-general-en"}, status=400,
              dg_error="No such model/language/tier combination found.")
    assert (c.what, c.param) == ("param:model", "model")
    assert c.message.startswith("model=flux-general-en is a Flux model")


def test_400_mip_opt_out_capitalised():
    c = cause(query={"model": "nova-3", "mip_opt_out": "False"}, status=400,
              dg_error="Failed to deserialize query parameters: invalid value for mip_opt_out")
    assert (c.what, c.param) == ("param:mip_opt_out", "mip_opt_out")
    assert "use mip_opt_out=false" in c.message


def test_400_dg_error_names_the_parameter():
    # two problems; dg-error names the second, which wins over the ranking
    c = cause(query={"model": "flux-general-en", "punctuate": "True"}, status=400,
              dg_error="Failed to deserialize query parameters: punctuate: expected a boolean")
    assert c.param == "punctuate"


def test_400_model_language_combination():
    c = cause(query={"model": "nova-3-medical", "language": "de"}, status=400,
              dg_error="No such model/language/tier combination found.")
    assert (c.what, c.param) == ("param:model", "model")
    assert c.message.startswith("model=nova-3-medical with language=de is not an available "
                                "combination")


def test_400_without_identifiable_parameter():
    c = cause(query={"model": "nova-3"}, status=400, dg_error="Bad Request")
    assert (c.what, c.param) == ("query", None)


@pytest.mark.parametrize("auth,what,needle", [
    (TEST_KEY, "auth-scheme-missing", "lacks the `Token ` prefix"),
    (f"token {JWT}", "jwt-with-token-scheme", "a JWT (****(JWT)…ab12) was sent with the token scheme"),
    (f"Bearer {TEST_KEY}", "key-with-bearer-scheme", "an API key (****cdef) was sent with the Bearer"),
    (f"Basic {TEST_KEY}", "auth-scheme-wrong", "uses the Basic scheme"),
    (f"Token {TEST_KEY}", "key-rejected", "the API key (****cdef) was rejected"),
    (f"Bearer {JWT}", "jwt-rejected", "temporary token (****(JWT)…ab12) was rejected"),
])
def test_401_authorization_forms(auth, what, needle):
    c = cause(status=401, headers=[["Host", "api.deepgram.com"], ["Authorization", auth]],
              dg_error="Invalid credentials.")
    assert c.what == what
    assert needle in c.message
    assert TEST_KEY not in c.message and JWT not in c.message


def test_401_without_credentials():
    c = cause(status=401, headers=[["Host", "api.deepgram.com"]])
    assert c.what == "credentials-missing"
    assert c.message == ("no credentials were sent (no Authorization header, no "
                         "Sec-WebSocket-Protocol token); send Authorization: Token <api key>")


def test_401_subprotocol_forms():
    c = cause(status=401, headers=[["Sec-WebSocket-Protocol", TEST_KEY]])
    assert c.what == "auth-scheme-missing"
    assert "without the token item" in c.message
    c = cause(status=401, headers=[["Sec-WebSocket-Protocol", f"token, {JWT}"]])
    assert c.what == "jwt-with-token-scheme"
    creds = find_credentials(handshake(headers=[["Sec-WebSocket-Protocol", f"bearer, {JWT}"]]))
    assert (creds.where, creds.scheme, creds.is_jwt) == ("subprotocol", "bearer", True)


def test_401_key_in_query_only():
    c = cause(status=401, headers=[["Host", "api.deepgram.com"]], query={"token": TEST_KEY})
    assert c.what == "credentials-in-query"


@pytest.mark.parametrize("status,what,needle", [
    (402, "payment", "no balance or credits"),
    (403, "permission", "no access to model=nova-3"),
    (404, "path", "/v1/listen is not a Deepgram streaming endpoint"),
    (405, "model-not-streaming", "model=nova-3 is not available for streaming"),
    (429, "concurrency", "concurrency limit"),
    (500, "server", "server-side problem (500)"),
    (502, "server", "server-side problem (502)"),
    (503, "server", "give Deepgram support the request id 0b6a9c33-1111-4222-8333-944455556666"),
    (504, "server", "status.deepgram.com"),
    (418, "other", "refused the upgrade with 418"),
])
def test_other_statuses(status, what, needle):
    c = cause(query={"model": "nova-3"}, status=status)
    assert c.what == what
    assert needle in c.message


def test_401_insufficient_permissions_from_the_body():
    # dg:/docs/errors: a 401 is INVALID_AUTH or INSUFFICIENT_PERMISSIONS; the body tells.
    body = ('{"err_code":"INSUFFICIENT_PERMISSIONS","err_msg":"User does not have sufficient '
            'permissions.","request_id":"r-1"}')
    c = cause(status=401, body=body, dg_request_id=None)
    assert c.what == "insufficient-permissions"
    assert "accepted but lack the permission" in c.message
    assert (c.error_code, c.body_shape, c.request_id) == ("INSUFFICIENT_PERMISSIONS", "err_code", "r-1")
    assert c.dg_error == "User does not have sufficient permissions."
    c = cause(status=401, body='{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.",'
                               '"request_id":"r-2"}', dg_error="Invalid credentials.")
    assert c.what == "key-rejected" and c.error_code == "INVALID_AUTH"


def test_error_body_shapes():
    from analyzer.deepgram.params import error_body
    b = error_body(handshake(status=400, body='{"category":"INVALID_QUERY_PARAMETER","message":'
                             '"Failed to deserialize query parameters","details":"unknown '
                             'variant","request_id":"r-3"}'))
    assert (b.shape, b.code, b.message, b.request_id) == (
        "category", "INVALID_QUERY_PARAMETER", "Failed to deserialize query parameters (unknown "
        "variant)", "r-3")
    b = error_body(handshake(status=429, body="Too many requests. Please try again later"))
    assert (b.shape, b.code, b.message) == ("text", None, "Too many requests. Please try again later")
    assert error_body(handshake(status=500)).shape == "none"


def test_query_token_claim_is_marked_unconfirmed():
    c = cause(status=401, headers=[["Host", "api.deepgram.com"]], query={"token": TEST_KEY})
    assert "whether it reads a query-string token is unconfirmed" in c.message
    assert "does not read" not in c.message


def test_400_tts_model_version():
    hs = handshake(path="/v1/speak", query={"model": "aura-9-nobody-en"}, status=400,
                   dg_error="No such model/version combination found.")
    c = handshake_cause(hs, "speak")
    assert (c.what, c.param) == ("param:model", "model")
    assert c.message == ("model=aura-9-nobody-en is not a text-to-speech model/version Deepgram "
                         "offers on /v1/speak; it takes Aura model names (e.g. aura-2-thalia-en)")
    assert "language" not in c.message
