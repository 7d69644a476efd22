"""Secrets are masked in every output, in every form they travel in."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.deepgram_session import TEST_KEY, ScriptedSession, run_deepgram_rules
from analyzer.model import Anomaly, Finding
from analyzer.redact import (mask_credential, mask_secret, redact_json_text, redact_session,
                             redact_text)

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiZXhwIjoxNzAwMDAwMDAwfQ"
       ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THab12")
HEX_KEY = "0123456789abcdef0123456789abcdef01234567"
OPENAI = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
SECRETS = (TEST_KEY, JWT, HEX_KEY, OPENAI, "AKIAEXAMPLESECRET99", "s3cr3t-session-token")


def test_masks_show_scheme_and_last_four():
    assert mask_credential(f"Token {TEST_KEY}") == "Token ****cdef"
    assert mask_credential(f"token {TEST_KEY}") == "token ****cdef"
    assert mask_credential(f"Bearer {JWT}") == "Bearer ****(JWT)…ab12"
    assert mask_credential(TEST_KEY) == "****cdef"
    assert mask_secret("short") == "****"
    assert mask_credential("Token ****cdef") == "Token ****cdef"


def test_redact_text_forms():
    cases = {
        f"Authorization: Token {TEST_KEY}": "Authorization: Token ****cdef",
        f"authorization: TOKEN {TEST_KEY}\r\nHost: x": "authorization: TOKEN ****cdef\r\nHost: x",
        f"Authorization: Bearer {JWT}": "Authorization: Bearer ****(JWT)…ab12",
        f"Authorization: {TEST_KEY}": "Authorization: ****cdef",
        f"Sec-WebSocket-Protocol: token, {TEST_KEY}": "Sec-WebSocket-Protocol: token, ****cdef",
        f"sec-websocket-protocol: bearer, {JWT}": "sec-websocket-protocol: bearer, ****(JWT)…ab12",
        f"/v1/listen?model=nova-3&token={TEST_KEY}": "/v1/listen?model=nova-3&token=****cdef",
        f"/v1/listen?ACCESS_TOKEN={JWT}&x=1": "/v1/listen?ACCESS_TOKEN=****(JWT)…ab12&x=1",
        f"/v1/listen?Key={TEST_KEY}": "/v1/listen?Key=****cdef",
        f"/v1/listen?authorization=Token%20{TEST_KEY}": "/v1/listen?authorization=Token%20****cdef",
        f'{{"access_token": "{JWT}", "expires_in": 30}}':
            '{"access_token": "****(JWT)…ab12", "expires_in": 30}',
        f"the token is {JWT} ok": "the token is ****(JWT)…ab12 ok",
        f"key={HEX_KEY}": "key=****4567",
        f"used {OPENAI}": "used ****0123",
    }
    for raw, clean in cases.items():
        assert redact_text(raw) == clean, raw
        assert redact_text(clean) == clean  # idempotent


def test_text_without_secrets_is_untouched():
    for s in ("Metadata sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              "request 0b6a9c33-1111-4222-8333-944455556666", "the token scheme is wrong",
              '{"type":"KeepAlive"}', ""):
        assert redact_text(s) == s


def test_settings_message_keeps_its_formatting_when_possible():
    text = ('{"type":"Settings","agent":{"think":{"endpoint":{"url":"https://llm.example",'
            f'"headers":{{"authorization":"Bearer {OPENAI}"}}}}}}}}}}')
    assert redact_json_text(text) == (
        '{"type":"Settings","agent":{"think":{"endpoint":{"url":"https://llm.example",'
        '"headers":{"authorization":"Bearer ****0123"}}}}}')
    nested = {"type": "Settings", "agent": {"think": {"provider": {
        "type": "aws_bedrock", "credentials": {"type": "sts", "region": "us-east-1",
                                               "access_key_id": "AKIAEXAMPLESECRET99",
                                               "session_token": "s3cr3t-session-token"}}}}}
    out = json.loads(redact_json_text(json.dumps(nested)))
    assert out["agent"]["think"]["provider"] == {"type": "aws_bedrock",
                                                 "credentials": "****(redacted)"}


def build_session_full_of_secrets():
    b = ScriptedSession(
        query={"model": "nova-3", "token": TEST_KEY, "Access_Token": JWT,
               "Authorization": f"Token {TEST_KEY}", "KEY": HEX_KEY},
        headers=[["Host", "api.deepgram.com"], ["authorization", f"token {TEST_KEY}"],
                 ["Sec-WebSocket-Protocol", f"bearer, {JWT}"], ["X-Api-Key", TEST_KEY],
                 ["Cookie", f"session={TEST_KEY}; theme=dark"]],
        status=401, dg_error=f"Invalid credentials for {TEST_KEY}",
        body=f'{{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","access_token":"{JWT}"}}')
    b.hs.response_headers.append(["sec-websocket-protocol", "token"])
    b.hs.response_headers.append(["Set-Cookie", f"sid={TEST_KEY}; Path=/; HttpOnly"])
    b.client_json({"type": "Settings", "agent": {"think": {
        "provider": {"type": "aws_bedrock", "credentials": {
            "type": "sts", "access_key_id": "AKIAEXAMPLESECRET99",
            "session_token": "s3cr3t-session-token"}},
        "endpoint": {"url": "https://llm.example",
                     "headers": {"Authorization": f"Bearer {OPENAI}"}}}}}, 0.1)
    b.server_json({"type": "Warning", "description": f"bad key {TEST_KEY}"}, 0.2)
    b.close("server", 1008, f"policy: key {TEST_KEY}", 0.3)
    s = b.finish()
    run_deepgram_rules(s)
    s.findings.append(Finding("custom", "info", f"saw Authorization: Token {TEST_KEY}",
                              details={"authorization": f"Token {TEST_KEY}", "url": b.hs.target,
                                       "nested": [{"access_token": JWT}]}))
    s.anomalies.append(Anomaly("x", 1, 0.0, detail={"raw": f"Bearer {JWT}"}))
    s.transcript = f"echo {TEST_KEY} from {b.hs.target}"  # a typed field carrying peer text
    return s


def everything(s):
    """All the text a renderer could print from a session."""
    return json.dumps(s.to_json(), ensure_ascii=False) + json.dumps(
        [s.handshake.target, s.handshake.path, s.handshake.body, s.handshake.body_json,
         s.handshake.query, s.handshake.request_headers, s.handshake.subprotocol,
         [m.text for m in s.messages], [a.detail for a in s.anomalies]], ensure_ascii=False)


def test_no_secret_survives_in_any_output():
    s = build_session_full_of_secrets()
    before = everything(s)
    assert all(secret in before for secret in SECRETS)  # the fixture really carries them
    redact_session(s)
    after = everything(s)
    for secret in SECRETS:
        assert secret not in after, secret
    assert TEST_KEY not in json.dumps(s.to_json())


def test_structured_places_show_exact_masks():
    s = redact_session(build_session_full_of_secrets())
    hs = s.handshake
    assert hs.request_headers == [
        ["Host", "api.deepgram.com"], ["authorization", "token ****cdef"],
        ["Sec-WebSocket-Protocol", "bearer, ****(JWT)…ab12"], ["X-Api-Key", "****cdef"],
        ["Cookie", "session=****cdef; theme=****"]]
    assert ["sec-websocket-protocol", "token"] in hs.response_headers
    assert ["Set-Cookie", "sid=****cdef; Path=/; HttpOnly"] in hs.response_headers
    assert hs.query == {"model": "nova-3", "token": "****cdef", "Access_Token": "****(JWT)…ab12",
                        "Authorization": "Token ****cdef", "KEY": "****4567"}
    assert hs.dg_error == "Invalid credentials for ****cdef"
    assert hs.body_json["access_token"] == "****(JWT)…ab12"
    assert "model=nova-3" in hs.target and "token=****cdef" in hs.target
    settings_msg = json.loads(s.messages[0].text)
    assert settings_msg["agent"]["think"]["provider"]["credentials"] == "****(redacted)"
    assert settings_msg["agent"]["think"]["endpoint"]["headers"] == {"Authorization": "Bearer ****0123"}
    assert s.close.server.reason == "policy: key ****cdef"
    custom = s.findings[-1]
    assert custom.message == "saw Authorization: Token ****cdef"
    assert custom.details["authorization"] == "Token ****cdef"
    assert custom.details["nested"] == [{"access_token": "****(JWT)…ab12"}]
    assert s.anomalies[0].detail == {"raw": "Bearer ****(JWT)…ab12"}
    # Typed model fields: peer text is cleaned, the masked credential summary is kept whole
    # (it used to be replaced by "****(redacted)" because its key is named like a secret).
    assert s.transcript == f"echo ****cdef from {hs.target}"
    assert s.to_json()["deepgram"]["credentials"] == {
        "where": "authorization", "scheme": "token", "jwt": False, "credential": "token ****cdef"}
    assert s.deepgram.server_warnings.items[0]["description"] == "bad key ****cdef"


def test_redaction_is_idempotent():
    s = redact_session(build_session_full_of_secrets())
    once = everything(s)
    redact_session(s)
    assert everything(s) == once


@settings(max_examples=80, deadline=None)
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                      min_size=16, max_size=48),
       scheme=st.sampled_from(["Token", "token", "Bearer", "TOKEN"]),
       prefix=st.text(alphabet=st.characters(whitelist_categories=("Ll", "Zs")), max_size=20))
def test_any_authorization_value_is_masked(secret, scheme, prefix):
    raw = f"{prefix}\nAuthorization: {scheme} {secret}\nHost: api.deepgram.com"
    out = redact_text(raw)
    assert secret not in out
    assert f"Authorization: {scheme} ****{secret[-4:]}" in out
    assert redact_text(out) == out


PIECES = ["Authorization: ", "authorization=", "Token ", "Bearer ", "token, ", "?token=", "&key=",
          "eyJhbGciOiJIUzI1NiJ9", ".", "eyJzdWIiOiIxMjM0NTY3ODkwIn0", "abcdefghij0123456789",
          TEST_KEY, " ", "\n", ",", ";", '"access_token": "', '"', "%20", HEX_KEY, OPENAI,
          "Sec-WebSocket-Protocol: "]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_redact_text_is_idempotent_on_any_mix(text):
    once = redact_text(text)
    assert redact_text(once) == once


def test_subprotocol_keeps_its_spelling():
    from analyzer.redact import redact_subprotocol
    assert redact_subprotocol(f"token,{TEST_KEY}") == "token,****cdef"
    assert redact_subprotocol(f"token, {TEST_KEY}") == "token, ****cdef"
    assert redact_subprotocol("token") == "token"
