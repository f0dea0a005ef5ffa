"""How many tries logins and signups get (chat.accounts), as a browser sees it through the pages."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from chat import accounts
from chat.standing import Account
from chat.tests.support import PASSWORD, log_in, sign_up

pytestmark = pytest.mark.django_db

ATTACKER, OWNER = "203.0.113.66", "198.51.100.7"
TOO_MANY = "Too many attempts. Try again in 15 minutes."
PAUSED = "Signing in and signing up are paused for a moment"


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def fail_logins(count: int, username: str = "alice", address: str = ATTACKER) -> None:
    for _ in range(count):
        response = log_in(username, "wrong guess", address)
        assert response.status_code == 200 and "Please enter a correct username and password" in response.text


# Failed logins ------------------------------------------------------------------------------------


def test_after_ten_wrong_passwords_the_address_gets_429_and_a_sentence(alice: Account) -> None:
    fail_logins(10)

    response = log_in("alice", "wrong guess", ATTACKER)

    assert response.status_code == 429
    assert TOO_MANY in response.text
    assert response["Retry-After"] == "900"


def test_a_locked_address_gets_no_answer_even_for_the_right_password(alice: Account) -> None:
    fail_logins(10)
    client = Client()

    response = log_in("alice", PASSWORD, ATTACKER, client)

    assert response.status_code == 429 and TOO_MANY in response.text
    assert not signed_in(client)


def test_the_real_user_still_signs_in_from_another_address(alice: Account) -> None:
    fail_logins(10)
    client = Client()

    response = log_in("alice", PASSWORD, OWNER, client)

    assert response.status_code == 302
    assert signed_in(client)


def test_other_accounts_are_not_locked_by_guesses_at_one(alice: Account, bob: Account) -> None:
    fail_logins(10, "alice")

    assert log_in("bob", PASSWORD, ATTACKER).status_code == 302


def test_one_address_guessing_at_many_accounts_meets_the_address_limit(alice: Account) -> None:
    for n in range(30):
        fail_logins(1, f"someone{n}")

    assert log_in("nobody-yet", "wrong guess", ATTACKER).status_code == 429
    assert log_in("alice", PASSWORD, ATTACKER).status_code == 429
    assert log_in("alice", PASSWORD, OWNER).status_code == 302


def test_the_right_password_clears_the_accounts_failures_from_that_address(alice: Account) -> None:
    fail_logins(9)
    assert log_in("alice", PASSWORD, OWNER).status_code == 302
    assert log_in("alice", PASSWORD, ATTACKER).status_code == 302

    fail_logins(10)  # a fresh count: none of these is refused

    assert log_in("alice", "wrong guess", ATTACKER).status_code == 429


def test_spelling_the_name_in_another_case_counts_as_the_same_account(alice: Account) -> None:
    fail_logins(5, "alice")
    fail_logins(5, "ALICE")

    assert log_in("Alice", "wrong guess", ATTACKER).status_code == 429


def test_the_lock_ends_with_its_window(settings, alice: Account) -> None:
    settings.CHAT_LOGIN_WINDOW_SECONDS = 1
    fail_logins(10)
    assert log_in("alice", PASSWORD, ATTACKER).status_code == 429

    time.sleep(2.1)  # the window, and the cache entry's whole-second expiry

    assert log_in("alice", PASSWORD, ATTACKER).status_code == 302


def test_parallel_guesses_get_no_more_than_the_limit(alice: Account) -> None:
    """Each try is counted before its password is checked, so a burst can't all slip in together."""
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=ATTACKER)

    def attempt(_: int) -> bool:
        try:
            accounts.start_login(request, "alice")
        except accounts.Refused:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        allowed = sum(pool.map(attempt, range(40)))

    assert allowed == 10


def test_the_admin_login_is_counted_too(alice: Account) -> None:
    for _ in range(10):
        response = Client().post(
            "/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=ATTACKER
        )
        assert response.status_code == 200

    response = Client().post("/admin/login/", {"username": "alice", "password": "x"}, REMOTE_ADDR=ATTACKER)

    assert response.status_code == 429 and TOO_MANY in response.text


def test_limits_are_settings(settings, alice: Account) -> None:
    settings.CHAT_LOGIN_FAILURES_PER_ACCOUNT = 2
    fail_logins(2)

    assert log_in("alice", "wrong guess", ATTACKER).status_code == 429


def test_counts_hold_on_the_production_cache(redis_cache: None, alice: Account) -> None:
    fail_logins(10)

    assert log_in("alice", "wrong guess", ATTACKER).status_code == 429
    assert log_in("alice", PASSWORD, OWNER).status_code == 302


# Signups ------------------------------------------------------------------------------------------


def test_the_sixth_signup_from_one_address_in_an_hour_is_refused(db: None) -> None:
    for n in range(5):
        assert sign_up(f"newcomer{n}", ATTACKER).status_code == 302

    response = sign_up("newcomer5", ATTACKER)

    assert response.status_code == 429
    assert "Too many attempts. Try again in 60 minutes." in response.text
    assert not User.objects.filter(username="newcomer5").exists()
    assert User.objects.count() == 5
    assert sign_up("newcomer5", OWNER).status_code == 302


def test_a_refused_signup_form_does_not_use_up_the_limit(db: None) -> None:
    for _ in range(6):
        assert sign_up("x" * 151, ATTACKER).status_code == 200  # too long a name: sent back

    assert sign_up("newcomer", ATTACKER).status_code == 302


# The counter's store is down: fail closed ---------------------------------------------------------


def test_logins_are_refused_with_503_while_the_counter_is_unreachable(
    alice: Account, unreachable_cache: None
) -> None:
    client = Client()
    assert client.get("/accounts/login/").status_code == 200  # the form itself still shows

    response = log_in("alice", PASSWORD, OWNER, client)

    assert response.status_code == 503
    assert PAUSED in response.text and response["Retry-After"] == "60"
    assert not signed_in(client)


def test_signups_are_refused_with_503_while_the_counter_is_unreachable(unreachable_cache: None) -> None:
    response = sign_up("newcomer", OWNER)

    assert response.status_code == 503 and PAUSED in response.text
    assert not User.objects.exists()


# Who is asking ------------------------------------------------------------------------------------


def address_of(settings, remote: str, forwarded: str = "", header: str = "") -> str:
    settings.CLIENT_IP_HEADER = header
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return accounts.client_address(RequestFactory().get("/", headers=headers, REMOTE_ADDR=remote))


def test_the_address_is_remote_addr_and_a_forged_header_is_ignored(settings) -> None:
    assert address_of(settings, "203.0.113.66", forwarded="1.2.3.4") == "203.0.113.66"


def test_a_trusted_proxy_header_gives_the_entry_the_proxy_added(settings) -> None:
    forwarded = "1.2.3.4, 203.0.113.66"  # the client forged the first; our proxy appended the last
    assert address_of(settings, "10.0.0.1", forwarded, "X-Forwarded-For") == "203.0.113.66"
    assert address_of(settings, "10.0.0.1", header="X-Forwarded-For") == "10.0.0.1"


def test_an_ipv6_client_counts_as_its_64_block(settings) -> None:
    assert address_of(settings, "2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_of(settings, "2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_of(settings, "::ffff:203.0.113.66") == "203.0.113.66"
