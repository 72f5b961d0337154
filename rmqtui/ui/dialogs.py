"""Modal screens: confirmations, the key help and a one-line prompt."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True only on ``y``."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog-box"):
            yield Static(self.question, id="confirm-question")
            yield Static("[b]y[/b] yes    [b]n[/b] / [b]esc[/b] no", classes="dialog-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    """Every key of the main screen, generated from its bindings."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help_close")]

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        # A grid, not padded text: on a narrow screen long keys and texts wrap inside their column.
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold", max_width=14)
        table.add_column()
        for key, text in self.rows:
            table.add_row(key, text)
        with VerticalScroll(id="help-box", classes="dialog-box"):
            yield Static(table, id="help-keys")

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        self.set_class(self.app.size.width < 100, "-narrow")
        box.border_title = "keys"
        box.border_subtitle = "esc / ? close"

    def action_close(self) -> None:
        self.dismiss(None)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text; dismisses with the text on enter, None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt_cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box", classes="dialog-box"):
            yield Static(self.question, id="prompt-question")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static("[b]enter[/b] apply    [b]esc[/b] cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
