"""HTTP/1.1 Upgrade handshake parsing (sans-I/O): requests, responses, WebSocket negotiation.

    p = RequestParser();  request = p.feed(chunk)   # None until complete
    q = ResponseParser(request_method=request.method)
    response = q.feed(chunk)                        # after a 101, q.leftover holds WebSocket frames
"""
from .body_content import body_text, parse_error_body
from .head import looks_like_request, looks_like_response
from .message import Request, Response
from .parser import RequestParser, ResponseParser
from .proxy import absolute_form_authority
from .websocket import (WEBSOCKET_GUID, deflate_agreement, is_websocket_upgrade, parse_extensions,
                        websocket_accept)

__all__ = [
    "looks_like_request", "looks_like_response",
    "RequestParser", "ResponseParser", "Request", "Response",
    "websocket_accept", "parse_extensions", "deflate_agreement", "WEBSOCKET_GUID", "is_websocket_upgrade",
    "parse_error_body", "body_text", "absolute_form_authority",
]
