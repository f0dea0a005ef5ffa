"""Outgoing webhooks: the signature, which messages call a bot, and deliveries to a real receiver.

The delivery tests run the task's body here (one call is one attempt), against a real HTTP
receiver on loopback; chat/tests/test_webhooks_worker.py runs them through the real worker.
"""

import hashlib
import hmac
import json
import time

import pytest

from chat import bots, direct, jobs, moderation, services, webhooks
from chat.models import Bot, Message, Room, WebhookDelivery
from chat.standing import Account
from chat.tests.support import client_for
from testsupport.receiver import Receiver, Reply, receiving

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status

# Signing ---------------------------------------------------------------------------------------


def test_the_signature_is_an_hmac_sha256_of_the_time_a_dot_and_the_body() -> None:
    body = b'{"message": {"text": "hi"}}'
    header = webhooks.sign("s3cret", 1_700_000_000, body)

    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_signature_and_nothing_changed() -> None:
    body = b'{"a": 1}'
    now = int(time.time())
    header = webhooks.sign("s3cret", now, body)

    assert webhooks.verify("s3cret", header, body)
    assert not webhooks.verify("s3cret", header, b'{"a": 2}')
    assert not webhooks.verify("other", header, body)
    assert not webhooks.verify("s3cret", header.replace(f"t={now}", f"t={now + 1}"), body)
    for broken in ("", "t=,v1=", f"v1={header.split('v1=')[1]}", "garbage", header + ",t=1"):
        assert not webhooks.verify("s3cret", broken, body)


def test_verify_refuses_an_old_delivery_replayed() -> None:
    body = b"{}"
    header = webhooks.sign("s3cret", int(time.time()) - 301, body)

    assert not webhooks.verify("s3cret", header, body, tolerance=300)
    assert webhooks.verify("s3cret", header, body, tolerance=600)


def test_verify_takes_any_of_several_signatures_for_a_secret_being_changed() -> None:
    body = b"{}"
    now = int(time.time())
    old = webhooks.sign("old", now, body).split("v1=")[1]
    header = webhooks.sign("new", now, body) + f",v1={old}"

    assert webhooks.verify("old", header, body) and webhooks.verify("new", header, body)


# Which messages call a bot -----------------------------------------------------------------------


def make_bot(name: str, rooms: list[Room], url: str = "http://hooks.example.com/parley") -> Bot:
    bot, _key = bots.create(name, webhook_url=url)
    bots.set_rooms(bot, rooms)
    return bot


def post(room: Room, author: Account, text: str) -> Message:
    outcome = services.post_message(room, author, {"message": text})
    assert outcome.message is not None, outcome.form.errors
    return outcome.message


def deliveries() -> list[tuple[str, int, str]]:
    return list(WebhookDelivery.objects.values_list("bot__account__username", "message_id", "status"))


def test_a_mention_of_a_bot_of_the_room_queues_one_delivery(lobby: Room, alice: Account) -> None:
    make_bot("helper", [lobby])

    message = post(lobby, alice, "@helper what's the build status? @helper?")

    assert deliveries() == [("helper", message.pk, Status.QUEUED)]


def test_no_delivery_without_a_mention_a_webhook_or_the_room(
    lobby: Room, other_room: Room, alice: Account, moderator: Account
) -> None:
    make_bot("helper", [lobby])
    make_bot("silent", [lobby], url="")
    make_bot("elsewhere", [other_room])
    banned = make_bot("banned", [lobby])
    moderation.ban(moderator, lobby, banned.account, "spam")

    post(lobby, alice, "helper, no at sign")
    post(lobby, alice, "@silent has no webhook, @elsewhere is not in this room, @banned is banned")

    assert deliveries() == []


def test_a_bots_own_messages_call_no_webhook_so_two_bots_cannot_loop(lobby: Room) -> None:
    ping, pong = make_bot("ping", [lobby]), make_bot("pong", [lobby])

    for bot, other in ((ping, "pong"), (pong, "ping")):
        found = bots.room_for(bot, "lobby")
        assert not isinstance(found, bots.Refusal)
        posted = bots.post(found[0], bot, found[1], f"@{other} your turn")
        assert isinstance(posted, Message)

    assert deliveries() == []


def test_every_message_of_a_direct_message_with_a_bot_queues_a_delivery(alice: Account) -> None:
    helper = make_bot("helper", [])
    room = direct.start(alice, helper.account)

    message = post(room, alice, "no mention needed here")

    assert deliveries() == [("helper", message.pk, Status.QUEUED)]


# Delivering: one call of the task is one attempt -------------------------------------------------


@pytest.fixture
def allow_loopback(settings) -> None:
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE = True
    settings.CHAT_WEBHOOK_TIMEOUT_SECONDS = 2
    settings.CHAT_WEBHOOK_ATTEMPTS = 3


def mention_of_bot_at(receiver: Receiver, lobby: Room, author: Account) -> WebhookDelivery:
    make_bot("helper", [lobby], url=receiver.url)
    post(lobby, author, "@helper is the build green?")
    return WebhookDelivery.objects.select_related("bot").get()


def bot_messages(room: Room) -> list[str]:
    return list(room.messages.filter(author__bot__isnull=False).values_list("body", flat=True))


def stored(delivery: WebhookDelivery) -> WebhookDelivery:
    return WebhookDelivery.objects.get(pk=delivery.pk)


def test_a_mention_is_delivered_signed_and_the_answer_is_the_bots_reply(
    allow_loopback: None, lobby: Room, alice: Account
) -> None:
    with receiving(Reply(200, b"All green :) **12** tests passed")) as receiver:
        delivery = mention_of_bot_at(receiver, lobby, alice)
        webhooks.attempt(delivery.pk)
        (request,) = receiver.received

    signature = request.headers["X-Parley-Signature"]
    assert webhooks.verify(delivery.bot.webhook_secret, signature, request.body)
    assert request.headers["X-Parley-Delivery"] == str(delivery.pk)
    sent = json.loads(request.body)
    assert sent["message"]["id"] == delivery.message_id
    assert sent["message"]["text"] == "@helper is the build green?"
    assert 'href="' in sent["message"]["html"]
    assert sent["message"]["permalink"].endswith(f"#message-{delivery.message_id}")
    assert sent["room"] == {"slug": "lobby", "name": "Lobby", "direct": False}
    assert sent["sender"] == {"id": alice.pk, "name": "alice"}
    assert bot_messages(lobby) == ["All green :) **12** tests passed"]
    done = stored(delivery)
    assert (done.status, done.attempts, done.response_status) == (Status.SENT, 1, 200)
    assert done.reply is not None and done.reply.author == delivery.bot.account


def test_a_500_is_retried_and_the_answer_after_it_is_posted_once(
    allow_loopback: None, lobby: Room, alice: Account
) -> None:
    with receiving(Reply(500, b"oops"), Reply(200, b"second time lucky")) as receiver:
        delivery = mention_of_bot_at(receiver, lobby, alice)
        with pytest.raises(jobs.RetryLater):
            webhooks.attempt(delivery.pk)
        failed_once = stored(delivery)
        assert bot_messages(lobby) == []  # a failure shows nothing in the room
        webhooks.attempt(delivery.pk)
        webhooks.attempt(delivery.pk)  # run again (a worker restarted): already sent, nothing more
        received = receiver.received

    assert (failed_once.status, failed_once.attempts, failed_once.response_status) == (Status.QUEUED, 1, 500)
    assert [r.headers["X-Parley-Delivery"] for r in received] == [str(delivery.pk)] * 2
    assert bot_messages(lobby) == ["second time lucky"]
    assert (stored(delivery).status, stored(delivery).attempts) == (Status.SENT, 2)


def test_a_receiver_that_times_out_is_retried_then_marked_failed(
    allow_loopback: None, settings, lobby: Room, alice: Account
) -> None:
    settings.CHAT_WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.CHAT_WEBHOOK_ATTEMPTS = 2
    with receiving(Reply(200, b"too late", delay=2)) as receiver:
        delivery = mention_of_bot_at(receiver, lobby, alice)
        with pytest.raises(jobs.RetryLater):
            webhooks.attempt(delivery.pk)
        webhooks.attempt(delivery.pk)
        assert len(receiver.received) == 2

    failed = stored(delivery)
    assert (failed.status, failed.attempts) == (Status.FAILED, 2)
    assert "No answer within 0.5 seconds" in failed.last_error
    assert bot_messages(lobby) == []


def test_a_private_address_is_refused_without_the_setting_and_nothing_is_sent(
    settings, lobby: Room, alice: Account
) -> None:
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE = False
    with receiving(Reply(200, b"never")) as receiver:
        # A name, not an address: it is refused for what it resolves to, at delivery time.
        delivery = mention_of_bot_at(receiver, lobby, alice)
        webhooks.attempt(delivery.pk)
        assert receiver.received == []

    failed = stored(delivery)
    assert failed.status == Status.FAILED
    assert "loopback" in failed.last_error and "CHAT_WEBHOOK_ALLOW_PRIVATE" in failed.last_error
    assert bot_messages(lobby) == []


@pytest.mark.parametrize(
    ("reply", "posted", "note"),
    [
        (Reply(204, b""), [], ""),
        (
            Reply(200, b"<p>Hi <b>there</b> &amp; welcome</p>", "text/html; charset=utf-8"),
            ["Hi there & welcome"],
            "",
        ),
        (Reply(200, b'{"text": "from json"}', "application/json"), ["from json"], ""),
        (Reply(200, b"odd charset", "text/plain; charset=x-unheard-of"), ["odd charset"], ""),
        (Reply(200, b"\x89PNG", "image/png"), [], "image/png is not posted"),
        (Reply(404, b"no such hook"), [], "answered 404"),
        (Reply(200, b"x" * 2001), [], "at most 2000 characters"),
    ],
)
def test_what_an_answer_becomes(
    allow_loopback: None, lobby: Room, alice: Account, reply: Reply, posted: list[str], note: str
) -> None:
    with receiving(reply) as receiver:
        delivery = mention_of_bot_at(receiver, lobby, alice)
        webhooks.attempt(delivery.pk)

    assert bot_messages(lobby) == posted
    assert note in stored(delivery).last_error
    assert stored(delivery).attempts == 1


# What staff see --------------------------------------------------------------------------------


def test_staff_see_each_bots_deliveries_and_why_one_failed_but_never_a_direct_messages_text(
    settings, lobby: Room, alice: Account, staff: Account
) -> None:
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE = False
    helper = make_bot("helper", [lobby], url="http://localhost:9/hook")
    post(lobby, alice, "@helper are you there?")
    post(direct.start(alice, helper.account), alice, "my secret plans")
    for delivery in WebhookDelivery.objects.all():
        webhooks.attempt(delivery.pk)

    answer = client_for(staff).get(f"/admin/chat/bot/{helper.pk}/change/")
    assert answer.status_code == 200, answer
    bot_page = answer.content.decode()
    listing = client_for(staff).get("/admin/chat/webhookdelivery/").content.decode()

    for page in (bot_page, listing):
        assert page.count("is a loopback, private or reserved address") == 2
        assert "#lobby" in page and "a direct message" in page
        assert "my secret plans" not in page
    assert helper.webhook_secret in bot_page


def test_staff_send_failed_deliveries_again_once_the_receiver_is_fixed(
    allow_loopback: None, lobby: Room, alice: Account, staff: Account, django_capture_on_commit_callbacks
) -> None:
    failing = [Reply(500, b"down")] * 3  # allow_loopback: 3 attempts
    with receiving(*failing, Reply(200, b"back up")) as receiver:
        delivery = mention_of_bot_at(receiver, lobby, alice)
        for _ in failing[:-1]:
            with pytest.raises(jobs.RetryLater):
                webhooks.attempt(delivery.pk)
        webhooks.attempt(delivery.pk)
        assert stored(delivery).status == Status.FAILED
        answered = post(lobby, alice, "@helper and now?")  # a delivery that goes through
        webhooks.attempt(WebhookDelivery.objects.get(message=answered).pk)
        selected = list(WebhookDelivery.objects.values_list("pk", flat=True))

        # The admin runs the delivery task itself (the test settings' immediate backend) on commit.
        with django_capture_on_commit_callbacks(execute=True):
            answer = client_for(staff).post(
                "/admin/chat/webhookdelivery/", {"action": "retry", "_selected_action": selected}, follow=True
            )
        received = [request.headers["X-Parley-Delivery"] for request in receiver.received]

    assert "1 deliveries queued to be sent again (1 not failed, left as they are)." in answer.content.decode()
    assert received.count(str(delivery.pk)) == 4, "the same delivery id, so a receiver can tell"
    assert len(received) == 5, "the delivery that had gone through was not sent again"
    assert bot_messages(lobby) == ["back up", "back up"]
    again = stored(delivery)
    assert (again.status, again.attempts, again.last_error) == (Status.SENT, 1, "")


def test_sent_and_failed_deliveries_older_than_the_days_given_are_pruned_queued_ones_kept(
    lobby: Room, alice: Account
) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    make_bot("helper", [lobby])
    for text in ("@helper one", "@helper two", "@helper three", "@helper four"):
        post(lobby, alice, text)
    old, old_failed, old_queued, young = WebhookDelivery.objects.order_by("pk")
    WebhookDelivery.objects.filter(pk=old.pk).update(status=Status.SENT)
    WebhookDelivery.objects.filter(pk__in=[old_failed.pk, young.pk]).update(status=Status.FAILED)
    month_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.exclude(pk=young.pk).update(created=month_ago)

    call_command("prune_webhook_deliveries", "--min-age-days", "30")

    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {old_queued.pk, young.pk}


def test_staff_cannot_save_a_webhook_url_whose_host_is_private_unless_the_setting_allows_it(
    settings,
) -> None:
    from chat.admin import BotForm

    def refusal(url: str) -> list[str]:
        form = BotForm(data={"name": "helper", "initial": "H", "webhook_url": url, "rooms": []})
        form.is_valid()
        return [str(error) for error in form.errors.get("webhook_url", [])]

    settings.CHAT_WEBHOOK_ALLOW_PRIVATE = False
    assert "loopback, private or reserved" in refusal("http://localhost:8001/hook")[0]
    assert "loopback, private or reserved" in refusal("http://10.0.0.5/hook")[0]
    assert "169.254.169.254 is not an address" in refusal("http://169.254.169.254/latest/meta-data/")[0]
    assert "user name or password" in refusal("https://me:pw@hooks.example.com/")[0]
    assert refusal("https://93.184.215.14/hook") == []
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE = True
    assert refusal("http://localhost:8001/hook") == []
    assert refusal("http://169.254.169.254/latest/meta-data/") != []
