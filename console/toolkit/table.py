"""``TableState``: a server-side paged, sorted, filtered list whose view lives in the URL.

A page's state subclasses it, names its columns, role and filters, and implements
``_fetch``. Every change of page, sort or filter only rewrites the URL (``?page=2&sort=
name&f_status=enabled``); loading the URL is what fetches, so every view can be
bookmarked, shared and reloaded. Each fetch re-checks who is signed in and, for a tenant
user, pins the query to that user's tenant.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

import msgspec
import reflex as rx

from console import db
from console.auth import Guarded, Role, authorize, deny
from console.i18n import LangState, tr
from console.toolkit.columns import Column, Filter, display_row
from shared.errors import TollgateError
from shared.services.listings import ListQuery

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import Page
    from shared.services.users import Principal

logger = logging.getLogger(__name__)

__all__ = ("PAGE_SIZES", "TableState")

PAGE_SIZES: tuple[int, ...] = (10, 20, 50, 100)


class TableState(Guarded, mixin=True):
    """Rows of one page of a list, and the page, sort and filters that chose them."""

    rows: list[dict[str, str]] = []  # noqa: RUF012 - Reflex copies state defaults per client
    total: int = -1
    """Rows over all pages; -1 when the listing does not count."""
    has_next: bool = False
    page: int = 1
    page_size: int = 20
    sort: str = ""
    desc: bool = False
    filters: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    filter_version: int = 0
    """Bumped when filters change from the URL, so the filter bar shows them afresh."""
    loading: bool = False
    error: str = ""

    _role: ClassVar[Role] = "admin"
    _columns: ClassVar[tuple[Column, ...]] = ()
    _filters: ClassVar[tuple[Filter, ...]] = ()
    _default_sort: ClassVar[str] = ""
    _default_desc: ClassVar[bool] = False

    async def _fetch(self, session: AsyncSession, query: ListQuery, who: Principal) -> Page:
        raise NotImplementedError

    def _query(self, who: Principal) -> ListQuery:
        return ListQuery(
            page=self.page,
            page_size=self.page_size,
            sort=self.sort,
            desc=self.desc,
            filters=dict(self.filters),
            tenant_id=None if who.is_admin else who.tenant_id,
        )

    def _read_url(self) -> None:
        params = self.router.url.query_parameters
        page = params.get("page", "1")
        size = params.get("size", "")
        self.page = int(page) if page.isdigit() and int(page) > 0 else 1
        self.page_size = int(size) if size.isdigit() and int(size) in PAGE_SIZES else 20
        self.sort = params.get("sort", self._default_sort)
        self.desc = params.get("desc", "1" if self._default_desc else "0") == "1"
        names = {f.name for f in self._filters}
        filters = {
            key[2:]: value
            for key, value in params.items()
            if key.startswith("f_") and key[2:] in names and value
        }
        if filters != self.filters:
            self.filter_version += 1
        self.filters = filters

    def _url(self) -> rx.event.EventSpec:
        params: dict[str, str] = {}
        if self.page > 1:
            params["page"] = str(self.page)
        if self.page_size != 20:
            params["size"] = str(self.page_size)
        if self.sort and self.sort != self._default_sort:
            params["sort"] = self.sort
        if self.desc != self._default_desc:
            params["desc"] = "1" if self.desc else "0"
        params.update({f"f_{key}": value for key, value in self.filters.items() if value})
        path = self.router.url.path.rstrip("/") or "/"
        query = urlencode(params)
        return rx.redirect(f"{path}?{query}" if query else path, replace=True)

    async def _reload(self) -> Any:
        who = await authorize(self, self._role)
        if who is None:
            return deny(self)
        self._who = msgspec.structs.asdict(who)
        self.loading = True
        try:
            async with db.session() as session:
                page = await self._fetch(session, self._query(who), who)
        except (TollgateError, ValueError) as exc:
            lang = (await self.get_state(LangState)).lang
            self.error = tr(lang, "error.unexpected", error=exc)
            self.rows = []
            return None
        finally:
            self.loading = False
        self.error = ""
        self.rows = [display_row(row, self._columns) for row in page.rows]
        self.total = -1 if page.total is None else page.total
        self.has_next = page.has_next
        return None

    @rx.event
    async def load(self) -> Any:
        """Read page, sort and filters from the URL, then fetch (the page's ``on_load``)."""
        self._read_url()
        return await self._reload()

    @rx.event
    async def refresh(self) -> Any:
        """Fetch the current page again."""
        return await self._reload()

    @rx.event
    def goto(self, page: int) -> Any:
        """Show page ``page``."""
        self.page = max(1, int(page))
        return self._url()

    @rx.event
    def next_page(self) -> Any:
        """Show the next page."""
        if self.has_next:
            self.page += 1
        return self._url()

    @rx.event
    def previous_page(self) -> Any:
        """Show the previous page."""
        self.page = max(1, self.page - 1)
        return self._url()

    @rx.event
    def sort_by(self, key: str) -> Any:
        """Sort by ``key``; a second click on the same key reverses the order."""
        if self.sort == key:
            self.desc = not self.desc
        else:
            self.sort, self.desc = key, False
        self.page = 1
        return self._url()

    @rx.event
    def set_size(self, size: str) -> Any:
        """Show ``size`` rows per page."""
        if size.isdigit() and int(size) in PAGE_SIZES:
            self.page_size = int(size)
            self.page = 1
        return self._url()

    @rx.event
    def apply_filters(self, form: dict[str, Any]) -> Any:
        """Narrow the list by the filter bar's values."""
        names = {f.name for f in self._filters}
        self.filters = {
            key: str(value).strip()
            for key, value in form.items()
            if key in names and str(value).strip() and str(value) != "__all__"
        }
        self.page = 1
        return self._url()

    @rx.event
    def clear_filters(self) -> Any:
        """Drop every filter."""
        self.filters = {}
        self.filter_version += 1
        self.page = 1
        return self._url()

    @rx.var
    def pages(self) -> int:
        """Pages over all rows; 0 when not counted."""
        if self.total < 0:
            return 0
        return max(1, -(-self.total // self.page_size))
