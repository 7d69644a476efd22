"""Resource limits shared by the layers, named by what they bound.

Each one keeps memory flat on hostile or very long captures; hitting one is never silent
(a finding, a count in the report, or a capped-but-counted list).
"""

# Anomaly records kept per session (Session.anomalies); past it every kind is still counted
# with its first and last frame (Session.anomaly_overflow), so no kind of evidence is lost.
SESSION_ANOMALY_RECORDS = 2000
# Anomaly records a WebSocket parser keeps when used on its own (no session builder
# attached as its anomaly sink); past it they are only counted per kind.
PARSER_ANOMALY_RECORDS = 1000
# Messages (text, close) kept per session for renderers, and their total characters.
SESSION_KEPT_MESSAGES = 5000
SESSION_KEPT_TEXT_CHARS = 8 << 20
# Bytes of a connection buffered (per direction) while deciding what it carries
# (HTTP upgrade, TLS, a WebSocket frame stream picked up mid-connection).
PROTOCOL_DECISION_BYTES = 64 * 1024
# Client bytes kept after the upgrade request while its response is still to come.
EARLY_CLIENT_BYTES = 4 << 20
