"""Drives a Livebase server with the official Convex Python client: subscribe, see another client's
mutation, get a mutation's result once its effects are visible, run an action, get an error's data.

Usage: python conformance.py http://127.0.0.1:PORT. Prints "OK" and exits 0, or exits 1 saying why.
"""

import faulthandler
import os
import sys

from convex import ConvexClient, ConvexError

TIMEOUT_SECONDS = 20


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    # The client's threads would keep a normal exit waiting.
    os._exit(1)


def bodies(messages):
    return [message["body"] for message in messages]


def main():
    url = sys.argv[1]
    # Dumps every thread's stack and exits with an error, even while the client's native code holds the GIL.
    faulthandler.dump_traceback_later(TIMEOUT_SECONDS, exit=True)

    watcher = ConvexClient(url)
    writer = ConvexClient(url)
    watched = iter(watcher.subscribe("messages:list"))
    own = iter(writer.subscribe("messages:list"))
    if bodies(next(watched)) != [] or bodies(next(own)) != []:
        fail("a fresh server's list is not empty")

    body = "hello from the python client"
    sent = writer.mutation("messages:send", {"body": body})
    if not isinstance(sent, str):
        fail(f"messages:send returned {sent!r}, not an id")
    # The client resolves a mutation once a Transition reached its commit; that Transition carried the
    # new list to the writer's own subscription, and the watcher gets it too.
    if bodies(next(own)) != [body]:
        fail("the writer's subscription did not get the new list")
    if bodies(next(watched)) != [body]:
        fail("the watcher's subscription did not get the other client's message")

    echoed = writer.action("messages:echo", {"text": "ping"})
    if echoed != "ping":
        fail(f"messages:echo returned {echoed!r}")

    try:
        writer.mutation("errors:fail", {"code": 42.0})
        fail("errors:fail succeeded")
    except ConvexError as error:
        if error.data != {"code": 42.0, "reason": "on purpose"}:
            fail(f"the error's data is {error.data!r}")

    try:
        writer.mutation("messages:send", {"body": 42.0})
        fail("a mutation with invalid arguments succeeded")
    except Exception as error:  # The client raises its own type for errors without data.
        if "ArgumentValidationError" not in str(error):
            fail(f"unexpected error: {error!r}")

    print("OK", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
