"""``FormState``: a create or edit form validated by the shared msgspec input structs.

A page's form state names its struct, role and ``_save``. Submitting validates every field
at once (messages in the user's language, under each field), shows a loading flag while
saving, and ends with a toast: success, or the service's refusal. Saving re-checks who is
signed in, exactly like every other handler.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import reflex as rx

from console import db
from console.auth import Guarded, Role, authorize, deny
from console.i18n import LangState, tr
from shared.errors import TollgateError
from shared.services.inputs import field_errors

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.users import Principal

logger = logging.getLogger(__name__)

__all__ = ("FormState", "translate_error")

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"length >= 1$"), "form.required"),
    (re.compile(r"length >= (\d+)$"), "form.min_length"),
    (re.compile(r"length <= (\d+)$"), "form.max_length"),
    (re.compile(r"Expected `int` >= (-?\d+)$"), "form.min_value"),
    (re.compile(r"Expected `int` <= (-?\d+)$"), "form.max_value"),
    (re.compile(r"Expected `int`"), "form.integer"),
    (re.compile(r"Invalid enum value"), "form.choice"),
)


def translate_error(message: str, lang: str, hint: str | None = None) -> str:
    """Return msgspec's field error ``message`` as a sentence in ``lang``."""
    for regex, key in _RULES:
        match = regex.search(message)
        if match:
            return tr(lang, key, n=match.group(1)) if match.groups() else tr(lang, key)
    if "matching regex" in message:
        return tr(lang, hint or "form.format")
    return message


class FormState(Guarded, mixin=True):
    """Values, per-field errors, a loading flag and the open flag of one form dialog."""

    values: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    errors: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    loading: bool = False
    open: bool = False
    editing: int = 0
    """Id of the row being edited; 0 for a new one."""

    _role: ClassVar[Role] = "admin"
    _schema: ClassVar[type[msgspec.Struct]]
    _defaults: ClassVar[dict[str, str]] = {}
    _hints: ClassVar[dict[str, str]] = {}
    """Message key explaining the expected format of a field, by field name."""
    _secrets: ClassVar[frozenset[str]] = frozenset({"password", "api_key"})
    """Fields never kept in the state (which the browser receives)."""

    async def _save(
        self, session: AsyncSession, data: Any, who: Principal, lang: str
    ) -> str | None:
        """Save validated ``data``; return the success message (None for the default)."""
        raise NotImplementedError

    def _after(self) -> Any:
        """Return the event to run after a successful save (e.g. a table refresh)."""
        return None

    @rx.event
    def start_new(self) -> None:
        """Open the form empty (with defaults)."""
        self.values = dict(self._defaults)
        self.errors = {}
        self.editing = 0
        self.open = True

    @rx.event
    def set_open(self, value: bool) -> None:
        """Open or close the form."""
        self.open = value
        if not value:
            self.errors = {}

    @rx.event
    async def submit(self, form: dict[str, Any]) -> Any:
        """Validate and save the submitted form."""
        who = await authorize(self, self._role)
        if who is None:
            yield deny(self)
            return
        lang = (await self.get_state(LangState)).lang
        values = {key: str(value).strip() for key, value in form.items() if not key.startswith("_")}
        self.values = {k: v for k, v in values.items() if k not in self._secrets}
        problems = field_errors(self._schema, values)
        self.errors = {
            name: translate_error(message, lang, self._hints.get(name))
            for name, message in problems.items()
        }
        if self.errors:
            yield rx.toast.error(tr(lang, "form.invalid"))
            return
        data = msgspec.convert(values, self._schema, strict=False)
        self.loading = True
        yield
        try:
            async with db.session() as session:
                message = await self._save(session, data, who, lang)
        except (TollgateError, ValueError) as exc:
            self.loading = False
            yield rx.toast.error(tr(lang, "form.failed", error=exc))
            return
        self.loading = False
        self.open = False
        self.errors = {}
        yield rx.toast.success(message or tr(lang, "form.saved"))
        after = self._after()
        if after is not None:
            yield after
