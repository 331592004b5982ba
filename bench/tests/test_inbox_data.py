"""The inbox benchmark's history made in SQL is what the inbox makes in Python: a
Fernet token pgcrypto wrote decrypts with ``cryptography``'s Fernet (and the inbox reads
the message back), a digest and a blind word token are the platform's."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from bench import inbox_crypto
from flowchat_platform.crypto import SecretBox
from flowchat_platform.privacy import BlindIndex
from flowchat_platform.testing import temporary_database

pytestmark = pytest.mark.integration


async def _made_in_sql() -> tuple[bytes, str, int]:
    signing, enc, privacy = inbox_crypto.keys()
    async with temporary_database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(inbox_crypto.FUNCTIONS)
            row = await conn.fetchrow(
                """
                SELECT public.bench_fernet(convert_to(jsonb_build_array(
                           'hi ord123456', jsonb_build_object('text', 'hi ord123456'))::text,
                           'UTF8'), decode(md5('7'), 'hex'), 1700000000, $1, $2) AS token,
                       public.bench_digest('bt001', '2340000000007', $3) AS digest,
                       public.bench_word_token('bt001', 'ord123456', $3) AS word
                """,
                signing,
                enc,
                privacy,
            )
        finally:
            await conn.close()
    assert row is not None
    return bytes(row["token"]), row["digest"], row["word"]


def test_a_token_made_in_sql_decrypts_and_digests_match() -> None:
    token, digest, word = asyncio.run(_made_in_sql())
    box = SecretBox([inbox_crypto.ENCRYPTION_KEY.encode()])
    body, content = orjson.loads(box.decrypt(token) or "")
    assert (body, content) == ("hi ord123456", {"text": "hi ord123456"})
    index = BlindIndex(inbox_crypto.PRIVACY_KEY.encode())
    assert digest == index.digest("bt001", "+2340000000007")
    assert word == index.word_token("bt001", "ord123456")
    assert [word] == index.search_tokens("bt001", "ORD123456")
    assert inbox_crypto.order_ref(5) == "ord139595"
    assert inbox_crypto.order_ref(6) is None
