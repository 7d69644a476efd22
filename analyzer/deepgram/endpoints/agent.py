"""/v1/agent/converse (old path /agent): the Voice Agent.  Facts from the protocol
reference, section "/v1/agent/converse (Voice Agent)" (spec;
dg:/docs/voice-agent-message-flow; dg:/docs/voice-agent-settings;
dg:/docs/voice-agent-errors-warnings) unless a comment names another source."""
from __future__ import annotations

from .listen_v1 import ENCODINGS as LISTEN_ENCODINGS
from .spec import Code, Endpoint, codes

# Settings.audio.input: the 11 /v1/listen encodings, default linear16 at 24000 Hz.
INPUT_ENCODINGS = LISTEN_ENCODINGS
INPUT_DEFAULT = ("linear16", 24000)
# Settings.audio.output (spec); with Flux TTS (speak version v2, the default when
# agent.speak is omitted) only linear16/mulaw/alaw and container none, others give
# INVALID_SETTINGS (dg:/docs/voice-agent-tts-models).
OUTPUT_ENCODINGS = frozenset({"linear16", "mulaw", "alaw", "mp3", "opus", "flac", "aac"})
FLUX_TTS_OUTPUT_ENCODINGS = frozenset({"linear16", "mulaw", "alaw"})

KEEPALIVE_EVERY = 8.0  # dg:/docs/agent-keep-alive: every 8 s while not sending audio
SESSION_CAP = 2 * 3600.0  # 2 h; Warning at 1 h 55 min; KeepAlive does not extend it

# The reference lists these codes by name only (dg:/docs/voice-agent-errors-warnings); each
# meaning below says what the name states, plus the reference's own notes where it has
# them (INVALID_SETTINGS with Flux TTS, FORCE_END_TURN_UNSUPPORTED, the 2 h session cap).
_SUPPORT = "retry; if it repeats, give Deepgram support the request id"
# Error {description, code}: session-ending.  The close code after it: unconfirmed.
ERRORS = codes(
    Code("INTERNAL_SERVER_ERROR", "Deepgram had an internal error", _SUPPORT, fatal=True),
    Code("CLIENT_MESSAGE_TIMEOUT", "the client sent nothing for too long (the idle limit is "
         "unconfirmed)", "send audio, or KeepAlive every 8 s while not sending audio",
         fatal=True),
    Code("UNPARSABLE_CLIENT_MESSAGE", "a client message could not be parsed",
         "send well-formed JSON of the documented message types", fatal=True),
    Code("NON_SETTINGS_MESSAGE_BEFORE_SETTINGS", "the first client message was not Settings",
         "send Settings first, right after Welcome, and nothing else before SettingsApplied",
         fatal=True),
    Code("SETTINGS_ALREADY_APPLIED", "a second Settings message was sent",
         "send Settings once; change things later with UpdateListen/UpdateThink/UpdateSpeak/"
         "UpdatePrompt", fatal=True),
    Code("INVALID_SETTINGS", "the Settings message was refused (e.g. compressed output with "
         "Flux TTS)", "fix the Settings field the description names; with Flux TTS use "
         "linear16, mulaw or alaw output and container none", fatal=True),
    Code("FAILED_TO_START_LISTENING", "the agent could not start its speech-to-text",
         "check the listen provider settings", fatal=True),
    Code("ASR_CONNECTION_CLOSED", "the agent's speech-to-text connection closed", _SUPPORT,
         fatal=True),
    Code("ASR_DRIVER_TIMEOUT", "the agent's speech-to-text timed out", _SUPPORT, fatal=True),
    Code("USER_AUDIO_FORMAT", "the audio did not match the format declared in "
         "Settings.audio.input", "declare the encoding and sample_rate of the audio actually "
         "sent (default linear16 at 24000 Hz)", fatal=True),
    Code("FAILED_TO_SPEAK", "the text-to-speech provider failed", "check the speak provider "
         "settings and its credentials", fatal=True),
    Code("FAILED_TO_THINK", "the LLM provider failed", "check the think provider settings and "
         "its credentials", fatal=True),
    Code("SERVER_GOING_AWAY", "Deepgram is shutting the session down", "reconnect",
         fatal=True),
    Code("NON_EXISTENT_FUNCTION_CALLED", "the LLM called a function that is not declared",
         "declare every function the prompt mentions in think.functions", fatal=True),
    Code("AGENT_ID_NOT_SUPPORTED", "an agent id was given where it is not supported",
         "send the full agent configuration instead of an agent id", fatal=True),
    Code("INVALID_AGENT_ID", "the agent id is not valid", "check the agent id (a UUID)",
         fatal=True),
    Code("MAXIMUM_SESSION_LENGTH_REACHED", "the session reached the 2 h limit (KeepAlive does "
         "not extend it)", "open a new session", fatal=True),
)
WARNINGS = codes(
    Code("INJECT_AGENT_MESSAGE_DURING_USER_SPEECH", "InjectAgentMessage was sent while the user "
         "was speaking", "inject agent messages only while the user is silent"),
    Code("INJECT_AGENT_MESSAGE_DURING_AGENT_SPEECH", "InjectAgentMessage was sent while the "
         "agent was speaking", "wait for AgentAudioDone before injecting"),
    Code("PROMPT_TOO_LONG", "the prompt is too long", "shorten the prompt"),
    Code("THINK_REQUEST_FAILED", "a request to the LLM provider failed", "check the think "
         "provider and its credentials"),
    Code("SPEAK_REQUEST_FAILED", "a request to the text-to-speech provider failed",
         "check the speak provider and its credentials"),
    Code("FUNCTION_CALL_FAILED", "a function call failed", "check the function's endpoint or "
         "the client's FunctionCallResponse"),
    Code("SLOW_THINK_REQUEST", "the LLM provider is answering slowly", "consider a faster "
         "model or provider"),
    Code("SLOW_SPEAK_REQUEST", "the text-to-speech provider is answering slowly",
         "consider a faster voice or provider"),
    Code("FORCE_END_TURN_UNSUPPORTED", "ForceEndTurn works only with a Flux listen provider "
         "(dg:/docs/voice-agent-force-end-turn)", "use a Flux listen model, or do not send "
         "ForceEndTurn"),
    Code("GPT_4O_STREAM_END_ERROR", "the GPT-4o stream ended with an error",
         "retry; consider another think model if it repeats"),
    Code("MAXIMUM_SESSION_LENGTH_APPROACHING", "the session is near the 2 h limit (Warning at "
         "1 h 55 min)", "finish, or prepare a new session"),
)

ENDPOINT = Endpoint(
    id="agent", path="/v1/agent/converse", product="Voice Agent",
    params=(),  # configured by the Settings message, not the query
    client_messages=frozenset({"Settings", "UpdateListen", "UpdateThink", "UpdateSpeak",
                               "UpdatePrompt", "InjectUserMessage", "InjectAgentMessage",
                               "FunctionCallResponse", "KeepAlive", "ForceEndTurn"}),
    server_messages=frozenset({
        "Welcome", "SettingsApplied", "ConversationText", "UserStartedSpeaking",
        "AgentThinking", "AgentStartedSpeaking", "AgentAudioDone", "FunctionCallRequest",
        "FunctionCallResponse", "FunctionCallCancelled", "ListenUpdated", "ThinkUpdated",
        "SpeakUpdated", "PromptUpdated", "InjectionRefused", "History", "LatencyReport",
        "Warning", "Error"}),
    greeting="Welcome", greeting_confirmed=True,  # at once; the client sends nothing before it
    # No end-of-stream message is documented for the Agent: the client closes the socket.
    end_message=None, end_summary=None, normal_closes=frozenset({1000}),
    keepalive_message="KeepAlive",
    idle_timeout=None,  # the idle limit behind CLIENT_MESSAGE_TIMEOUT: unconfirmed
    silence_advice="send KeepAlive every 8 s while not sending audio to the Voice Agent "
                   "(dg:/docs/agent-keep-alive; the idle limit itself is unconfirmed)",
    keepalive_rule="KeepAlive every 8 s while not sending audio; 2 h cap, KeepAlive does not "
                   "extend it (dg:/docs/agent-keep-alive).",
    errors=ERRORS, warnings=WARNINGS,
)
