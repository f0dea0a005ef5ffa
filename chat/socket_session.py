"""The session and the user of a websocket: Channels' AuthMiddlewareStack, minus what a socket never uses.

Channels' stack is built for HTTP and websockets alike. For a websocket two of its costs buy nothing:
- its SessionMiddleware wraps `send` to save the session and set its cookie on
  "http.response.start", a message a websocket never sends; the wrapper still ran on every frame
  written to the socket (the history, every broadcast), reading the session twice through its proxy;
- its AuthMiddleware looks the user up in the database thread even when the handshake carries no
  session cookie, where the answer is always a visitor (AnonymousUser) and no query is made.
Everything else is Channels' own: the same cookie parsing, session store and user lookup (with the
session's hash verified) for every socket that has a session.
"""

from typing import TYPE_CHECKING, Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.contrib.auth.models import AnonymousUser

if TYPE_CHECKING:  # the stubs' name for a scope; Channels itself has none
    from channels.consumer import _ChannelScope


class SocketSessionMiddleware(SessionMiddleware):
    """The session in the scope, as Channels' SessionMiddleware puts it, with `send` left unwrapped."""

    async def __call__(
        self, scope: "_ChannelScope", receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> Any:
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)  # type: ignore[call-arg, misc]  # an ASGI 3 app


class SocketAuthMiddleware(AuthMiddleware):
    """The user in the scope, as Channels' AuthMiddleware puts it; a visitor without a session
    cookie is answered without the hop to the database thread."""

    async def resolve_scope(self, scope: "_ChannelScope") -> None:
        if scope["session"].session_key is None:  # no cookie, or none Django would accept as a key
            scope["user"]._wrapped = AnonymousUser()  # type: ignore[union-attr]  # populate_scope set it
            return
        await super().resolve_scope(scope)


def socket_auth_stack(inner: Any) -> CookieMiddleware:  # Any: URLRouter, which the stubs type apart
    """What AuthMiddlewareStack(inner) does for a websocket, cheaper (see the module's docstring)."""
    return CookieMiddleware(SocketSessionMiddleware(SocketAuthMiddleware(inner)))
