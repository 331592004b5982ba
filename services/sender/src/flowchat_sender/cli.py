"""The sender's DLQ tool straight on the broker: ``python -m flowchat_sender dlq …``
(:mod:`flowchat_sender.__main__`; ``serve`` runs the service). Operators use
``flowchat dlq`` (over the sender's HTTP API) instead; this stays for a pod's shell.

::

    python -m flowchat_sender dlq list   [--limit N] [--reason TEXT] [--id MESSAGE_ID ...]
    python -m flowchat_sender dlq replay [--limit N] [--reason TEXT] [--id MESSAGE_ID ...] [--force]

The DLQ tool reads ``AMQP_URL`` and ``REDIS_URL`` like the service and prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
import structlog

from flowchat_sender.settings import Settings


async def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from flowchat_platform.redis import create_redis
    from flowchat_sender.dlq import ParkingLot
    from flowchat_sender.idempotency import IdempotencyStore

    # stdout carries the JSON answer: the audit's log lines go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    redis = create_redis(settings.redis_url)
    try:
        lot = ParkingLot(
            settings.amqp_url, IdempotencyStore(redis, ttl_s=settings.idempotency_ttl_s)
        )
        ids = frozenset(args.id) if args.id else None
        if args.action == "list":
            parked = await lot.list(limit=args.limit, reason=args.reason, message_ids=ids)
            out: object = [p.public() for p in parked]
        else:
            report = await lot.replay(
                limit=args.limit, reason=args.reason, message_ids=ids, force=args.force
            )
            out = report.public()
    finally:
        await redis.aclose()
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def dlq_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowchat_sender dlq")
    parser.add_argument("action", choices=("list", "replay"))
    parser.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    parser.add_argument("--reason", help="only messages whose parking reason contains this")
    parser.add_argument(
        "--id", action="append", help="only this message id (repeatable)", metavar="MESSAGE_ID"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replay: also re-send messages whose outcome is unknown (deletes their claim)",
    )
    args = parser.parse_args(argv)
    if args.force and args.action != "replay":
        parser.error("--force only applies to replay")
    return asyncio.run(_dlq(args, Settings()))
