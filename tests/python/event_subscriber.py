"""Subscribes to Navarch's public event stream with nats-py and prints each event as one JSON line.

This is the example of docs/events.md, run by tests/event_stream.rs:

    python3 event_subscriber.py nats://127.0.0.1:4222 'navarch.default.events.configmaps.demo.>' 3

It prints `subscribed` once the subscription is in place, then one line per event
(`{"type":..,"name":..,"resourceVersion":..,"previous":..,"gap":..,"object":..}`), and exits after COUNT
events (or 60 s). A gap (the previous-resourceVersion header differs from the last event seen of that resource)
is where a real subscriber would list and watch through the API from the last resourceVersion it saw.
"""

import asyncio
import json
import sys

import nats


async def main(url: str, subject: str, count: int) -> None:
    nc = await nats.connect(url)
    last_seen: dict[str, str] = {}  # per resource: the resourceVersion of the last event
    done = asyncio.Event()
    received = 0

    async def on_event(msg) -> None:
        nonlocal received
        headers = msg.headers or {}
        event = json.loads(msg.data)
        resource = headers.get("Navarch-Resource")
        rv = headers.get("Navarch-Resource-Version")
        previous = headers.get("Navarch-Previous-Resource-Version")
        # The first event seen of a resource cannot be checked; after that, `previous` must be the last one seen.
        gap = resource in last_seen and previous != last_seen[resource]
        last_seen[resource] = rv
        print(json.dumps({
            "subject": msg.subject,
            "type": event["type"],
            "name": event["object"]["metadata"]["name"],
            "resourceVersion": rv,
            "previous": previous,
            "gap": gap,
            "object": event["object"],
        }), flush=True)
        received += 1
        if received >= count:
            done.set()

    await nc.subscribe(subject, cb=on_event)
    await nc.flush()
    print("subscribed", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
