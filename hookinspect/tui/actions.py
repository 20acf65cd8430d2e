"""What the keys do to deliveries: delete and undo (views/inbox.Trash), copy, export, save,
replay, edit and replay, diff; each is a core function first. A mixin of HookinspectApp."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import work

from hookinspect.errors import HookinspectError
from hookinspect.formats.diff import diff_deliveries
from hookinspect.formats.export import ExportItem, export_path, render_curl, write_export
from hookinspect.formats.targets import validate_target
from hookinspect.model import Delivery
from hookinspect.private_files import write_private
from hookinspect.send.forward import RequestEdits
from hookinspect.send.replay import last_own_target, replay_deliveries
from hookinspect.signing.registry import resigner_for
from hookinspect.tui.screens.prompt import ConfirmPrompt, EditRequest, TextPrompt
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.delivery import change_lines
from hookinspect.views.inbox import acted_on
from hookinspect.views.text import counted, safe

# What `x` writes, by the file name's extension.
EXPORT_FORMATS = {".har": "har", ".json": "fixture", ".sh": "curl", ".http": "raw"}


class DeliveryActions:
    """The app's actions on deliveries; see the module's docstring."""

    def action_delete(self) -> None:
        """Delete the marked deliveries (or the current one) after a yes; `u` brings them back for
        the trash's undo window, after which (or on quit) they leave the store."""
        table = self.main_query(DeliveryList)
        seqs = acted_on(table.marked, table.current_seq)[::-1]
        if not seqs:
            return
        what = f"#{seqs[0]}" if len(seqs) == 1 else f"the {len(seqs)} marked deliveries"

        def answered(yes: bool | None) -> None:
            if not yes or not self._has_main_screen():
                return
            self.main_query(DeliveryList).remove(seqs)
            self.trash.put(seqs)
            self.update_status()
            self.say(f"deleted {what}: u brings {'it' if len(seqs) == 1 else 'them'} back "
                     f"(for {self.trash.seconds:.0f} s)", title="deleted")

        self.push_screen(ConfirmPrompt(f"Delete {what} and {'its' if len(seqs) == 1 else 'their'} attempts?"), answered)

    def _restore_rows(self, seqs: list[int]) -> None:
        if self._has_main_screen():
            self.main_query(DeliveryList).restore(seqs)

    def action_undo_delete(self) -> None:
        seqs = self.trash.undo()
        if seqs is None:
            self.say("nothing to undo", severity="warning")
            return
        self._restore_rows(seqs)
        self.update_status()
        self.say(f"restored {', '.join(f'#{s}' for s in seqs[:5])}{'…' if len(seqs) > 5 else ''}", title="undone")

    async def action_copy_curl(self) -> None:
        delivery = await self.current()
        if delivery is None:
            return
        command = render_curl([ExportItem(delivery, [])], to=self.target)
        self.copy_to_clipboard(command)
        self.say(f"curl command for #{delivery.seq} copied to the clipboard ({len(command)} characters)")

    def action_export_marked(self) -> None:
        """Export the marked deliveries (or the current one) to a file the user names; the
        extension says the format: .har, .json (a fixture for `check`), .sh (curl), .http (raw)."""
        table = self.main_query(DeliveryList)
        seqs = acted_on(table.marked, table.current_seq)
        if not seqs:
            return
        default = export_path(Path.cwd(), "har")

        async def chosen(name: str | None) -> None:
            if not name:
                return
            path = Path(name).expanduser()
            fmt = EXPORT_FORMATS.get(path.suffix.lower()) if not path.is_dir() else "har"
            if fmt is None:
                self.say(f"unknown export extension {path.suffix or '(none)'}: use " + ", ".join(EXPORT_FORMATS),
                         severity="error", title="export")
                return
            try:
                items = await self.workspace.read(
                    lambda store: [ExportItem(store.get(seq), store.attempts(seq)) for seq in seqs])
                written, masked = await asyncio.to_thread(write_export, items, fmt, path)
            except HookinspectError as exc:
                self.say(exc.message, severity="error", title="export")
                return
            self.say(f"exported {len(items)} deliver{'y' if len(items) == 1 else 'ies'} as {fmt} to {written}"
                     + (f"; masked {len(masked)} secrets" if masked else ""), title="export")

        self.push_screen(TextPrompt(f"Export {len(seqs)} deliver{'y' if len(seqs) == 1 else 'ies'} to "
                                    f"(.har, .json fixture, .sh curl, .http raw):", str(default.name), "file name"),
                         chosen)

    async def action_copy_body(self) -> None:
        delivery = await self.current()
        if delivery is None:
            return
        text = delivery.decoded().data.decode("utf-8", "replace")
        self.copy_to_clipboard(text)
        self.say(f"body of #{delivery.seq} copied to the clipboard ({len(text)} characters)")

    async def action_save_body(self) -> None:
        """Write the body (decoded from gzip/br when it was) to a file the user names."""
        delivery = await self.current()
        if delivery is None:
            return
        extension = {"json": "json", "x-www-form-urlencoded": "txt", "xml": "xml"}.get(
            delivery.content_type.mime.split("/")[-1].split("+")[-1], "bin")
        default = f"hookinspect-{delivery.seq}-body.{extension}"

        def chosen(name: str | None) -> None:
            if not name:
                return
            path = Path(name).expanduser()
            decoded = delivery.decoded()
            try:
                write_private(path, decoded.data)
            except OSError as exc:
                self.say(f"cannot write {path}: {exc.strerror}", severity="error", title="save body")
                return
            how = f" (decoded from {'+'.join(decoded.encodings)})" if decoded.encodings else ""
            self.say(f"wrote the body of #{delivery.seq} to {path}: {len(decoded.data)} bytes{how}", title="save body")

        self.push_screen(TextPrompt(f"Save the body of #{delivery.seq} to:", default, "file name"), chosen)

    async def action_replay(self) -> None:
        delivery = await self.current()
        if delivery is None:
            return
        target = self.target or await self._last_target(delivery)
        if target is None:
            await self.action_replay_to()
            return
        self.send(delivery.seq, target)  # type: ignore[arg-type]

    async def _last_target(self, delivery: Delivery) -> str | None:
        return await self.workspace.read(lambda store: last_own_target(store, delivery.seq))  # type: ignore[arg-type]

    async def action_replay_to(self) -> None:
        delivery = await self.current()
        if delivery is None:
            return

        def chosen(url: str | None) -> None:
            if url:
                self.target = url
                self.update_status()
                self.send(delivery.seq, url)  # type: ignore[arg-type]

        suggested = self.target or await self._last_target(delivery) or ""
        self.push_screen(TextPrompt(f"Replay #{delivery.seq} to:", suggested), chosen)

    async def action_edit_replay(self) -> None:
        delivery = await self.current()
        if delivery is None:
            return
        target = self.target or await self._last_target(delivery)

        def edited(result: tuple[list[tuple[str, str]], bytes] | None) -> None:
            if result is None:
                return
            headers, body = result
            edits = RequestEdits.replacing(delivery.headers, headers, body)
            if target is None:
                self.push_screen(TextPrompt(f"Send the edited #{delivery.seq} to:"),
                                 lambda url: url and self.send(delivery.seq, url, edits))  # type: ignore[arg-type]
            else:
                self.send(delivery.seq, target, edits)  # type: ignore[arg-type]

        self.push_screen(EditRequest(delivery.headers.pairs(), delivery.text()), edited)

    @work(group="send")
    async def send(self, seq: int, target: str, edits: RequestEdits | None = None) -> None:
        """Replay through the core and the shared writer (re-signed when a secret is known)."""
        try:
            target = validate_target(target)
            secrets = self.secrets
            [attempt] = await replay_deliveries(
                self.workspace, {seq: target}, edits=edits,
                resigner_for=(lambda d: resigner_for(d, secrets)) if secrets else None)
        except HookinspectError as exc:
            self.say(exc.message, severity="error", title="replay")
            return
        # The row and the detail follow from the workspace's announcement of the attempt.
        if attempt.is_success:
            self.say(f"#{seq} → {attempt.outcome} in {attempt.latency_ms:.0f} ms", title="replayed")
        else:
            detail = attempt.error_message or (attempt.response.text()[:200] if attempt.response else "")
            self.say(f"#{seq} → {attempt.outcome}: {detail}", severity="error", title="replay failed")

    def action_diff(self) -> None:
        table = self.main_query(DeliveryList)
        seq = table.current_seq
        if seq is None:
            return
        other = next((s for s in sorted(table.marked) if s != seq), None)
        self.main_query(DeliveryDetail).show_diff([[("comparing…", "dim")]])
        self.compute_diff(seq, other)

    @work(thread=True, exclusive=True, group="diff")
    def compute_diff(self, seq: int, other_seq: int | None) -> None:
        """The comparison off the UI thread: two big bodies take a while."""
        try:
            with self.worker_store() as store:
                delivery = store.get(seq)
                if other_seq is None:
                    previous = store.previous_of_event(delivery)
                    other_seq = previous.seq if previous else None
                other = store.get(other_seq) if other_seq is not None else None
            if other is None:
                lines = [[("nothing to compare with: mark a delivery (space) first", "yellow")]]
            else:
                changes = diff_deliveries(other, delivery)
                lines = [[(f"#{other.seq} → #{delivery.seq}   ({counted(len(changes), 'change')})", "bold")], [],
                         *change_lines(changes)]
        except HookinspectError as exc:
            lines = [[safe(exc.message, "red")]]
        self._from_thread(self._show_diff, seq, lines)

    def _show_diff(self, seq: int, lines: list) -> None:  # noqa: ANN001 - list[Line]
        if self._has_main_screen() and self.main_query(DeliveryList).current_seq == seq:
            self.main_query(DeliveryDetail).show_diff(lines)
