"""The detail of the highlighted delivery, rendered in a worker so a large body never
stalls the list. A mixin of HookinspectApp."""

from __future__ import annotations

from textual import work

from hookinspect.errors import HookinspectError
from hookinspect.model import Delivery
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.delivery import DetailLines
from hookinspect.views.detail import draw_detail, read_detail

# Rendered details kept (a pretty-printed 256 KiB body is worth not computing twice).
DETAIL_CACHE = 8
# A detail that takes longer than this to compute says "rendering…" meanwhile.
RENDERING_NOTE_AFTER = 0.1


class DetailLoading:
    """Renders the highlighted delivery's detail for the app; see the module's docstring."""

    async def current(self) -> Delivery | None:
        """The delivery under the cursor, read in a thread (an action's one read)."""
        seq = self.main_query(DeliveryList).current_seq
        if seq is None:
            return None
        try:
            return await self.workspace.read(lambda store: store.get(seq))
        except HookinspectError:
            return None

    def show_delivery(self, seq: int, *, same_delivery: bool = False) -> None:
        """The detail of #seq: from the cache, or computed in a worker (one at a time, the latest
        wanted first), saying "rendering…" when that takes a while."""
        key = (seq, self.show_all_body)
        self._detail_wanted = key
        cached = self._details.get(key)
        if cached is not None:
            self._details.move_to_end(key)
            self._show_detail(cached, same_delivery)
            return
        if self._rendering_note is None and not same_delivery:
            self._rendering_note = self.set_timer(RENDERING_NOTE_AFTER, self._say_rendering)
        if not self._rendering:
            self._rendering = True
            self.render_detail(key, same_delivery)

    def _say_rendering(self) -> None:
        self._rendering_note = None
        if self._detail_wanted is not None and self._detail_wanted not in self._details and self._has_main_screen():
            self.main_query(DeliveryDetail).show_rendering(self._detail_wanted[0])

    def _show_detail(self, view: DetailLines, same_delivery: bool) -> None:
        if self._rendering_note is not None:
            self._rendering_note.stop()
            self._rendering_note = None
        self.main_query(DeliveryDetail).show(view, same_delivery=same_delivery)

    @work(thread=True, group="detail")
    def render_detail(self, key: tuple[int, bool], same_delivery: bool) -> None:
        seq, show_all = key
        view: DetailLines | None = None
        error = ""
        try:
            with self.worker_store() as store:
                read = read_detail(store, seq)
            view = draw_detail(read, self.secrets, show_all=show_all)
        except HookinspectError as exc:
            error = exc.message
        finally:
            self._from_thread(self._rendered, key, view, error, same_delivery)

    def _rendered(self, key: tuple[int, bool], view: DetailLines | None, error: str, same_delivery: bool) -> None:
        self._rendering = False
        if not self._has_main_screen():
            return
        if view is not None:
            self._details[key] = view
            while len(self._details) > DETAIL_CACHE:
                self._details.popitem(last=False)
        wanted = self._detail_wanted
        if key == wanted:
            if view is not None:
                self._show_detail(view, same_delivery)
            else:
                self.main_query(DeliveryDetail).show_nothing(error)
        elif wanted is not None and wanted in self._details:
            self._show_detail(self._details[wanted], False)
        elif wanted is not None:  # the cursor moved on while this one was computed
            self._rendering = True
            self.render_detail(wanted, False)
