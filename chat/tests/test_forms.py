"""Forms' own rules; here, which usernames the signup page accepts (chat.forms.SignupForm)."""

import pytest
from django.contrib.auth.models import User

from chat.forms import lookalike_key
from chat.standing import Account
from chat.tests.support import make_user, sign_up

pytestmark = pytest.mark.django_db

LOOKALIKE = "That name looks too much like someone else&#x27;s. Please choose another."
ASCII_ONLY = "This value may contain only unaccented lowercase a-z and uppercase A-Z letters"


def refused(username: str, sentence: str) -> None:
    response = sign_up(username)
    assert response.status_code == 200, "the signup page should come back with the form"
    assert sentence in response.text
    assert not User.objects.filter(username=username).exists()


def test_a_cyrillic_lookalike_of_a_taken_name_is_refused(alice: Account) -> None:
    refused("\u0430lice", ASCII_ONLY)  # U+0430 CYRILLIC SMALL LETTER A, then "lice"


@pytest.mark.parametrize("username", ["Ωmega", "zoë", "名前"])
def test_names_outside_ascii_are_refused(db: None, username: str) -> None:
    refused(username, ASCII_ONLY)


def test_a_name_taken_in_another_case_is_refused(alice: Account) -> None:
    refused("ALICE", "A user with that username already exists.")


@pytest.mark.parametrize(
    ("taken", "lookalike"),
    [
        ("alice", "aIice"),
        ("alice", "a1ice"),
        ("bill", "biII"),
        ("bob0", "bobO"),
        ("mona", "rnona"),
        ("wendy", "vvendy"),
        ("MOM", "rnorn"),
    ],
)
def test_a_name_made_of_lookalike_letters_is_refused(db: None, taken: str, lookalike: str) -> None:
    make_user(taken)

    refused(lookalike, LOOKALIKE)


def test_a_distinct_ascii_name_is_welcome(alice: Account) -> None:
    assert sign_up("alicia").status_code == 302
    assert User.objects.filter(username="alicia").exists()


def test_the_lookalike_key_folds_what_reads_alike_and_keeps_the_rest() -> None:
    assert lookalike_key("aIice") == lookalike_key("alice") == lookalike_key("A1ice")
    assert lookalike_key("rnona") == lookalike_key("mona")
    assert lookalike_key("iris") != lookalike_key("lris")
