"""The in-memory channel layer, without a task per member channel on every group send.

Channels' InMemoryChannelLayer.group_send starts a task for each channel of the group and waits
for them all, though each one only puts a copy of the message on a queue without waiting. With
the hub (chat/hub.py) a group has one channel per process, and a post sends four events: the
sender's handler then yields to the event loop about twice per event, and the hub wakes once per
event, where it could take all four in one go. This layer puts the copies on the queues at once,
in the same order, with the same capacity, expiry and silent drop of a full channel.
"""

from contextlib import suppress

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class DirectInMemoryChannelLayer(InMemoryChannelLayer):
    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()  # type: ignore[attr-defined]  # the stubs leave out the private helper
        for channel in list(self.groups.get(group, {})):
            with suppress(ChannelFull):  # dropped silently, as Channels' own layer does
                await self.send(channel, message)  # a put on the channel's queue: it never waits
