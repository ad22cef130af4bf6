"""Who is asking: the user a request's token names, and whether that user owns the inbox asked for.

A request carries `Authorization: Bearer <token>` (tokens.py). The live feed may carry it as the
`access_token` query parameter instead: a browser's EventSource cannot set headers. A missing,
bad or expired token is a 401; a good token for another user than the path's is a 403.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from aiohttp import web

from inbox.tokens import Claims, TokenError, verify


def json_error(status: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json",
                  headers=headers or None)


class Authenticator:
    def __init__(self, secrets: Sequence[bytes], clock: Callable[[], float] = time.time) -> None:
        if not secrets:
            raise ValueError("no token secret")
        self.secrets = list(secrets)
        self.clock = clock

    def claims(self, request: web.Request, allow_query_token: bool = False) -> Claims:
        token = _bearer(request.headers.get("Authorization", ""))
        if token is None and allow_query_token:
            token = request.query.get("access_token") or None
        if token is None:
            raise _unauthorized("no token: send Authorization: Bearer <token>")
        now = int(self.clock())
        errors = []
        # Several secrets while one is rotated out: a token signed by any of them is good.
        for secret in self.secrets:
            try:
                return verify(secret, token, now)
            except TokenError as exc:
                errors.append(str(exc))
        # A secret whose signature matched knows best what else is wrong (e.g. expired).
        problem = next((e for e in errors if e != "bad signature"), errors[0])
        raise _unauthorized(f"invalid token: {problem}")

    def owner(self, request: web.Request, allow_query_token: bool = False) -> str:
        """The path's user id, if the token is that user's."""
        claims = self.claims(request, allow_query_token)
        user_id = request.match_info["user_id"]
        if claims.user_id != user_id:
            raise json_error(web.HTTPForbidden, "this token is not for this user's inbox")
        return user_id


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized(message: str) -> web.HTTPException:
    return json_error(web.HTTPUnauthorized, message,
                      **{"WWW-Authenticate": f'Bearer error="invalid_token", '
                                             f'error_description="{message}"'})
