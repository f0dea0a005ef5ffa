"""Posts stored in a batch (chat/posting.py) and the page cache on Redis, as in production: a page
rendered while the batch was being stored is never served once its posts are shown."""

import pytest
from channels.db import database_sync_to_async

from chat import pagecache, posting, services
from chat.models import Room
from chat.standing import Account
from chat.tests.support import NEW_MESSAGE, SocketOpener, drain, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_page_rendered_before_the_batch_committed_is_stale_by_the_time_a_browser_sees_the_post(
    redis_cache: None, open_socket: SocketOpener, lobby: Room, alice: Account
) -> None:
    reader = await open_socket()
    await drain(reader)
    before_the_post = await database_sync_to_async(pagecache.room_versions)(lobby)
    seen_before_commit: list[tuple] = []

    def post_then_look() -> str:
        outcome = services.post_message(lobby, alice, {"message": "fresh news"})
        assert outcome.message is not None
        # What a page of the room rendered now (another request, reading the data before this
        # commit) would be stored under.
        seen_before_commit.append(pagecache.room_versions(lobby))
        return "acknowledged"

    assert await posting.batcher().answer(post_then_look) == "acknowledged"
    assert "fresh news" in await receive_until(reader, NEW_MESSAGE)

    shown_now = await database_sync_to_async(pagecache.room_versions)(lobby)
    assert seen_before_commit[0] != before_the_post, "a page rendered before the post would be served"
    assert shown_now != seen_before_commit[0], "a page rendered before the commit would be served now"
