"""What the outbox tests share: reading back every message a JetStream stream holds."""

from __future__ import annotations

import asyncio


def stream_messages(url: str, stream: str) -> list:
    """Every message of a JetStream stream (subject, headers, data), in order."""
    import nats

    async def read() -> list:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            return [
                await js.get_msg(stream, seq)
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
            ]
        finally:
            await nc.close()

    return asyncio.run(read())
