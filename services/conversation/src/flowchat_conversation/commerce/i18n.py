"""The bot's language: gettext message catalogs and Babel's locale formats (no I/O
beyond reading the catalogs shipped with the package, once).

Catalogs are standard gettext ``.po`` files under ``locales/<lang>/LC_MESSAGES/
messages.po`` (extracted with ``pybabel extract -F babel.cfg``, see the README); they are
compiled in memory with Babel when first used, so no build step and no binary files.
English is the source language (the msgids). A :class:`Tr` carries one locale: ``tr("…")``
translates and fills ``{placeholders}``, ``tr.money``/``tr.number``/``tr.date`` format
per locale (``es``: ``1.234,50 US$``, ``7 dic 2026``).

The customer's language is the one they chose (a language name typed anywhere —
"español", "portugues", "hindi" — or the language menu), remembered per customer,
else the tenant's default (``BotSettings.locale``), else English. The words the bot
itself teaches (``menu``, ``cart``, ``cancel``, ``help``, ``agent``, ``remove``) are
understood in every supported language, from the catalogs (:func:`keyword_of`).
"""

from __future__ import annotations

import io
import unicodedata
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

from flowchat_conversation.commerce.domain import format_money, round_money

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT = "en"
#: Languages with a catalog (English is the source), and their names in themselves.
SUPPORTED: dict[str, str] = {
    "en": "English",
    "es": "Español",
    "pt": "Português",
    "hi": "हिन्दी",
}
#: Typed names that choose a language (compared without case and accents).
_LANGUAGE_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("english", "ingles", "ingles", "angla", "अंग्रेज़ी", "अंग्रेजी"),
    "es": ("espanol", "spanish", "castellano", "espanhol", "स्पेनिश"),
    "pt": ("portugues", "portuguese", "portugues do brasil", "पुर्तगाली"),
    "hi": ("hindi", "हिन्दी", "हिंदी"),
}


def _n(msgid: str) -> str:
    """Marks a msgid for extraction (``pybabel extract -k _n``) without translating."""
    return msgid


#: The words the bot teaches, as English msgids; each catalog translates them.
KEYWORDS = (_n("menu"), _n("cart"), _n("cancel"), _n("help"), _n("agent"), _n("language"))
REMOVE = _n("remove")
#: The line under a numbered menu (channels without interactive messages).
MENU_PROMPT = _n("Reply with a number or a word from the list.")


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().strip().strip("!.?¡¿"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def supported(locale: str | None) -> str:
    """The supported language closest to ``locale`` (``es_MX`` → ``es``), else English."""
    if not locale:
        return DEFAULT
    lang = locale.replace("-", "_").split("_")[0].lower()
    return lang if lang in SUPPORTED else DEFAULT


@cache
def _translations(lang: str) -> NullTranslations:
    path = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT or not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


class Tr:
    """Translations and formats of one language."""

    def __init__(self, locale: str | None = None) -> None:
        self.lang = supported(locale)
        try:
            self.locale = Locale.parse(self.lang)
        except (UnknownLocaleError, ValueError):  # pragma: no cover - SUPPORTED are known
            self.locale = Locale.parse(DEFAULT)
        self._t = _translations(self.lang)

    def __call__(self, msgid: str, /, **values: object) -> str:
        text = self._t.gettext(msgid)
        return text.format(**values) if values else text

    def plural(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        text = self._t.ngettext(singular, plural, n)
        return text.format(n=n, **values)

    def money(self, amount: Decimal, currency: str) -> str:
        """``102,13 US$`` (es), ``US$ 102,13`` (pt); English keeps the bot's own
        unambiguous ``102.13 USD``."""
        if self.lang == DEFAULT:
            return format_money(amount, currency)
        return format_currency(round_money(amount, currency), currency.upper(), locale=self.locale)

    def number(self, value: Decimal | int) -> str:
        return format_decimal(value, locale=self.locale)

    def date(self, value: datetime) -> str:
        return format_date(value, format="medium", locale=self.locale)

    def datetime(self, value: datetime) -> str:
        return format_datetime(value, format="medium", locale=self.locale, tzinfo=value.tzinfo)


@cache
def tr(locale: str | None = None) -> Tr:
    return Tr(locale)


@cache
def _language_table() -> dict[str, str]:
    """Each language's words (and its own name), plain, → the language (the first
    language listed wins a word two share)."""
    table: dict[str, str] = {}
    for lang, words in _LANGUAGE_WORDS.items():
        for word in (*words, SUPPORTED[lang]):
            table.setdefault(_plain(word), lang)
    return table


def language_of(text: str) -> str | None:
    """The language a message names when it is just a language's name ("español")."""
    plain = _plain(text)
    if not plain:
        return None
    return _language_table().get(plain)


@cache
def _keyword_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for lang in SUPPORTED:
        t = tr(lang)
        for word in (*KEYWORDS, REMOVE):
            table.setdefault(_plain(t(word)), word)
    for word in (*KEYWORDS, REMOVE):
        table[word] = word
    return table


def keyword_of(text: str) -> str | None:
    """The English keyword a whole message means, in any supported language."""
    return _keyword_table().get(_plain(text))


def remove_words() -> set[str]:
    """ "remove" in every supported language (``remove cement``, ``quitar cemento``)."""
    return {w for w, canonical in _keyword_table().items() if canonical == REMOVE}
