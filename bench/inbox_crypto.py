"""The inbox benchmark's history encrypted as the inbox stores it (issue 28), made in SQL:
the fixed keys the benchmarks start the inbox with, and pgcrypto functions making Fernet
tokens, keyed digests and blind word tokens exactly as :mod:`flowchat_inbox.sealing`
does in Python (``bench/tests/test_inbox_data.py`` checks they agree). No I/O here.
"""

from __future__ import annotations

import base64

#: The keys the generated history is encrypted under (a benchmark's, never a real one).
ENCRYPTION_KEY = "YmVuY2gtaW5ib3gtZmVybmV0LWtleS0wMTIzNDU2Nzg="
PRIVACY_KEY = "bench-inbox-privacy-key-0123456789"
#: Fernet, keyed digests and blind word tokens in SQL (pgcrypto), as the inbox makes them
#: in Python (``bench/tests/test_inbox_data.py`` checks they agree).
FUNCTIONS = r"""
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public;
CREATE OR REPLACE FUNCTION public.bench_fernet(plain bytea, iv bytea, ts bigint,
                                               signing bytea, enc bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT convert_to(translate(encode(b || public.hmac(b, signing, 'sha256'), 'base64'),
                                E'+/\n', '-_'), 'UTF8')
    FROM (SELECT '\x80'::bytea || int8send(ts) || iv
                 || public.encrypt_iv(plain, enc, iv, 'aes-cbc/pad:pkcs') AS b) x
$$;
CREATE OR REPLACE FUNCTION public.bench_digest(tenant text, id text, key bytea)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(public.hmac(convert_to(tenant, 'UTF8') || '\x00'::bytea
                              || convert_to(id, 'UTF8'), key, 'sha256'), 'hex')
$$;
CREATE OR REPLACE FUNCTION public.bench_word_token(tenant text, word text, key bytea)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || encode(substring(public.hmac(
        'search'::bytea || '\x00'::bytea || convert_to(tenant, 'UTF8') || '\x00'::bytea
        || convert_to(word, 'UTF8'), key, 'sha256') from 1 for 8), 'hex'))::bit(64)::bigint
$$;
"""


def keys() -> tuple[bytes, bytes, bytes]:
    """(Fernet signing key, Fernet encryption key, privacy key) of the generated data."""
    raw = base64.urlsafe_b64decode(ENCRYPTION_KEY)
    return raw[:16], raw[16:], PRIVACY_KEY.encode()


def order_ref(message_id: int) -> str | None:
    """The order reference generated message ``message_id`` holds (a fifth of them)."""
    if message_id % 5:
        return None
    return f"ord{(message_id * 7919) % 900000 + 100000}"
