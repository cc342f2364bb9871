"""Console authentication: token digests, roles, session expiry, request checks."""

from __future__ import annotations

import hashlib

import pytest
from starlette.requests import Request

from gateway.config import ConsoleUser
from gateway.console.auth import NO_USERS, Principal, Sessions, Users, token_sha256
from gateway.console.core import Denied, same_origin
from gateway.console.filters import filter_from_json, parse_query
from gateway.spool import MessageFilter


def user(name: str, role: str, token: str) -> ConsoleUser:
    return ConsoleUser(name=name, role=role,  # type: ignore[arg-type]
                       token_sha256=hashlib.sha256(token.encode()).hexdigest())


USERS = Users([user("olga", "operator", "tok-olga"), user("vic", "viewer", "tok-vic")])


def test_token_digest_is_hex_sha256_of_the_token() -> None:
    assert token_sha256("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(token_sha256("x")) == 64


def test_tokens_map_to_their_users_and_roles() -> None:
    assert USERS.authenticate("tok-olga") == Principal("olga", "operator")
    assert USERS.authenticate("tok-vic") == Principal("vic", "viewer")


@pytest.mark.parametrize("token", ["", "tok-olg", "tok-olga ", "TOK-OLGA",
                                   token_sha256("tok-olga")])
def test_wrong_tokens_and_the_digest_itself_are_refused(token: str) -> None:
    assert USERS.authenticate(token) is None


def test_operator_includes_viewer_but_not_the_other_way() -> None:
    assert Principal("o", "operator").may("viewer")
    assert Principal("o", "operator").may("operator")
    assert Principal("v", "viewer").may("viewer")
    assert not Principal("v", "viewer").may("operator")


def test_no_users_means_nobody_and_the_message_says_how_to_add_one() -> None:
    empty = Users([])
    assert not empty.configured
    assert empty.authenticate("anything") is None
    assert "hl7gw console token" in NO_USERS and "console.users" in NO_USERS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_after_their_lifetime() -> None:
    clock = Clock()
    sessions = Sessions(hours=1, clock=clock)
    s = sessions.create(Principal("vic", "viewer"))
    assert sessions.get(s.id) == s
    clock.now += 3599
    assert sessions.get(s.id) == s
    clock.now += 1
    assert sessions.get(s.id) is None
    assert len(sessions) == 0  # dropped, not just hidden


def test_sessions_are_random_and_logout_drops_them() -> None:
    sessions = Sessions(hours=8)
    a = sessions.create(Principal("vic", "viewer"))
    b = sessions.create(Principal("vic", "viewer"))
    assert a.id != b.id and a.csrf != b.csrf and len(a.id) >= 40
    sessions.drop(a.id)
    assert sessions.get(a.id) is None
    assert sessions.get(b.id) == b
    assert sessions.get(None) is None and sessions.get("nope") is None


def test_creating_a_session_sweeps_expired_ones() -> None:
    clock = Clock()
    sessions = Sessions(hours=1, clock=clock)
    sessions.create(Principal("a", "viewer"))
    clock.now += 7200
    sessions.create(Principal("b", "viewer"))
    assert len(sessions) == 1


def request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw,
                    "query_string": b""})


def test_same_origin_compares_the_origin_with_the_host() -> None:
    assert same_origin(request({"host": "gw:8080", "origin": "http://gw:8080"}))
    assert not same_origin(request({"host": "gw:8080", "origin": "https://evil.example"}))
    assert not same_origin(request({"host": "gw:8080", "sec-fetch-site": "cross-site"}))
    assert same_origin(request({"host": "gw:8080"}))  # curl: no browser, no CSRF


def test_query_filters_parse_and_refuse_nonsense() -> None:
    q = parse_query({"sender": "APP|FAC", "type": "ADT^*", "status": "failed",
                     "control_id": "C1", "since": "2024-01-15T10:30", "limit": "20"})
    assert q.filter == MessageFilter(sender="APP|FAC", message_type="ADT^*", status="failed",
                                     control_id="C1", since=1705314600.0)
    assert q.limit == 20
    with pytest.raises(Denied) as bad_status:
        parse_query({"status": "lost"})
    assert bad_status.value.status == 400
    with pytest.raises(Denied):
        parse_query({"since": "yesterday"})


def test_replay_filters_need_something_or_all() -> None:
    with pytest.raises(Denied, match="all"):
        filter_from_json({})
    assert filter_from_json({"all": True}) == MessageFilter()
    assert filter_from_json({"ids": [3, 4]}) == MessageFilter(ids=(3, 4))
    with pytest.raises(Denied, match="unknown"):
        filter_from_json({"idz": [3]})
