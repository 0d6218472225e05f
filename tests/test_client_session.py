"""The shared backend session (lama_backend.client.session) both editor plugins use.

Fast unit tests with scripted clients; the plugins' own tests run the same code against real
backends (tests/test_krita_job_backend.py, tests/test_gimp_plugin.py, the real-editor tiers).
"""
from __future__ import annotations

import threading

import pytest

from lama_backend.client import BackendError, BackendUnavailable, JobCancelled
from lama_backend.client import session

ADDRESS = "tcp://127.0.0.1:7000"


class EditorError(Exception):
    """Stands in for a plugin's own PluginError."""


EDITOR = session.Editor(error=EditorError, plugin_noun="plug-in", token_hint="Fix the TOKEN setting.",
                        autostart_hint="set COMMAND so the plug-in starts it.", check_autostart="Check COMMAND.",
                        log_path="/tmp/test-session.log")


class ScriptedClient:
    """Answers `hello` and `inpaint` from a script: a value to return or an exception to raise."""

    def __init__(self, address, token, hello_answer, inpaint_answer):
        self.address, self.token = address, token
        self.hello_answer, self.inpaint_answer = hello_answer, inpaint_answer
        self.closed = False
        self.inpaint_calls = []

    def hello(self):
        if isinstance(self.hello_answer, Exception):
            raise self.hello_answer
        return self.hello_answer

    def inpaint(self, request, **kwargs):
        self.inpaint_calls.append((request, kwargs))
        if isinstance(self.inpaint_answer, Exception):
            raise self.inpaint_answer
        return self.inpaint_answer

    def close(self):
        self.closed = True


class ScriptedBackend:
    """A client factory whose n-th client answers `hello` with the n-th scripted answer, and a starter."""

    def __init__(self, *hello_answers, start_error=None):
        self.hello_answers = list(hello_answers)
        self.start_error = start_error
        self.clients = []
        self.starts = []
        self.progress = []

    def client_factory(self, address, token=None):
        client = ScriptedClient(address, token, self.hello_answers.pop(0), None)
        self.clients.append(client)
        return client

    def starter(self, address, argv, timeout, token, log_path):
        self.starts.append((address, argv, timeout, token, log_path))
        if self.start_error is not None:
            raise self.start_error

    def connect(self, autostart, token="tok"):
        return session.connect(ADDRESS, token, autostart, EDITOR, self.client_factory, self.starter,
                               lambda fraction, stage: self.progress.append((fraction, stage)))


# -- the autostart command --------------------------------------------------------------------------
def test_a_single_word_gets_serve_bind_and_token_appended():
    assert session.autostart_argv("/opt/lama/bin/lama-backend", ADDRESS, "t", posix=True) == [
        "/opt/lama/bin/lama-backend", "serve", "--bind", ADDRESS, "--token", "t"]
    assert session.autostart_argv("  lama-backend \n", ADDRESS, None, posix=True) == [
        "lama-backend", "serve", "--bind", ADDRESS]
    assert session.autostart_argv("lama-backend", ADDRESS, "", posix=True)[-1] == ADDRESS  # empty token: none


def test_a_full_command_line_is_kept_as_is():
    assert session.autostart_argv("python3 -m lama_backend.cli serve --bind tcp://h:1", ADDRESS, "t",
                                  posix=True) == ["python3", "-m", "lama_backend.cli", "serve", "--bind", "tcp://h:1"]


def test_posix_quoting_keeps_a_path_with_spaces_in_one_word():
    assert session.autostart_argv("'/Applications/LaMa Backend/lama-backend'", ADDRESS, None, posix=True) == [
        "/Applications/LaMa Backend/lama-backend", "serve", "--bind", ADDRESS]
    assert session.autostart_argv('"/opt/my lama/lama-backend" serve --weights "/w/big lama.safetensors"',
                                  ADDRESS, None, posix=True) == [
        "/opt/my lama/lama-backend", "serve", "--weights", "/w/big lama.safetensors"]


def test_windows_quoting_keeps_backslashes_and_drops_the_quotes():
    command = r'"C:\Program Files\LaMa\lama-backend.exe"'
    assert session.autostart_argv(command, ADDRESS, "t", posix=False) == [
        r"C:\Program Files\LaMa\lama-backend.exe", "serve", "--bind", ADDRESS, "--token", "t"]
    assert session.autostart_argv(r"C:\lama\python.exe -m lama_backend.cli serve", ADDRESS, None, posix=False) == [
        r"C:\lama\python.exe", "-m", "lama_backend.cli", "serve"]
    # POSIX rules would eat the backslashes: the flag is what keeps Windows paths intact.
    assert session.autostart_argv(r"C:\lama\lama-backend.exe", ADDRESS, None, posix=True)[0] == "C:lamalama-backend.exe"


def test_an_unbalanced_quote_is_a_value_error():
    with pytest.raises(ValueError):
        session.autostart_argv('"/opt/lama/lama-backend', ADDRESS, None, posix=True)


# -- hints and messages -----------------------------------------------------------------------------
def test_hints_name_the_editor_own_settings():
    assert EDITOR.hint("unauthorized") == "Fix the TOKEN setting."
    assert EDITOR.hint("unsupported_protocol") == ("The plug-in and the backend come from different versions; "
                                                   "update both.")
    assert EDITOR.hint("too_large") == "Select a smaller area or lower the context margin."
    assert EDITOR.hint("queue_full").startswith("The backend is busy")
    assert EDITOR.hint("no_such_code") == ""


def test_how_to_start_message_names_the_address_reason_and_the_editor_setting():
    message = session.how_to_start_message(ADDRESS, "timed out", EDITOR)
    assert message == ("No LaMa backend answers at %s (timed out).\n\nStart it in a terminal with:\n"
                       "    lama-backend serve --bind %s\nor set COMMAND so the plug-in starts it. Nothing was changed."
                       % (ADDRESS, ADDRESS))


# -- connecting -------------------------------------------------------------------------------------
def test_a_running_backend_is_used_and_nothing_is_started():
    backend = ScriptedBackend({"pid": 1})
    malformed = []  # a broken autostart command must not matter while the backend answers
    client = backend.connect(lambda: malformed.append(1) or session.autostart_argv('"x', ADDRESS, None))
    assert client is backend.clients[0] and not client.closed and client.token == "tok"
    assert backend.starts == [] and malformed == [] and backend.progress == []


def test_a_backend_serving_the_bundled_model_is_reported_as_a_progress_stage():
    bundled = {"pid": 1, "model": {"family": "lama", "preset": "small", "bundled": True,
                                   "source": "/site/lama_backend/default_model/lama-small.safetensors "
                                             "(bundled default model, safetensors)"}}
    backend = ScriptedBackend(bundled)
    backend.connect(None)
    assert backend.progress == [(0.0, session.BUNDLED_MODEL_STAGE)]
    assert "lama-backend fetch big-lama" in session.BUNDLED_MODEL_STAGE
    for other in ({"pid": 1, "model": {"source": "/c/big-lama.pt (torchscript)", "bundled": False}}, {"pid": 1},
                  {"pid": 1, "model": None}, {"pid": 1, "model": {"source": "x (bundled default model)"}}):
        backend = ScriptedBackend(other)
        backend.connect(None)
        assert backend.progress == [], other


def test_no_backend_and_no_autostart_says_how_to_start():
    backend = ScriptedBackend(BackendUnavailable("no answer within 5 s"))
    with pytest.raises(EditorError, match=r"(?s)No LaMa backend answers at .*\(no answer within 5 s\).*set COMMAND"):
        backend.connect(None)
    assert backend.clients[0].closed and backend.starts == []


def test_no_backend_with_autostart_starts_it_and_says_hello_again():
    backend = ScriptedBackend(BackendUnavailable("nobody"), {"pid": 2})
    client = backend.connect(lambda: ["lama-backend", "serve", "--bind", ADDRESS])
    assert backend.starts == [(ADDRESS, ["lama-backend", "serve", "--bind", ADDRESS], session.AUTOSTART_TIMEOUT,
                               "tok", EDITOR.log_path)]
    assert backend.progress == [(0.0, "starting the backend")]
    assert backend.clients[0].closed and client is backend.clients[1] and not client.closed


def test_a_failed_autostart_names_the_command_the_log_and_what_to_check():
    backend = ScriptedBackend(BackendUnavailable("nobody"), start_error=BackendUnavailable("exited with code 2"))
    with pytest.raises(EditorError) as caught:
        backend.connect(lambda: ["/x/lama-backend", "serve"])
    assert str(caught.value) == ("Could not start the backend with /x/lama-backend serve: exited with code 2 "
                                 "(log: /tmp/test-session.log). Check COMMAND. Nothing was changed.")
    backend = ScriptedBackend(BackendUnavailable("nobody"), start_error=FileNotFoundError("no such file"))
    with pytest.raises(EditorError, match="Could not start the backend with /y: no such file"):
        backend.connect(lambda: ["/y"])


def test_a_malformed_autostart_command_is_a_clear_error_when_it_is_needed():
    backend = ScriptedBackend(BackendUnavailable("nobody"))
    with pytest.raises(EditorError, match=r"autostart command cannot be read \(No closing quotation\)\. Check COMMAND"):
        backend.connect(lambda: session.autostart_argv('"/opt/lama', ADDRESS, None, posix=True))
    assert backend.starts == []


def test_a_started_backend_that_still_does_not_answer_says_how_to_start():
    backend = ScriptedBackend(BackendUnavailable("nobody"), BackendUnavailable("still nobody"))
    with pytest.raises(EditorError, match=r"\(still nobody\)"):
        backend.connect(lambda: ["lama-backend"])
    assert len(backend.starts) == 1 and all(client.closed for client in backend.clients)


@pytest.mark.parametrize("autostart", [None, lambda: ["lama-backend"]])
def test_a_refusal_carries_the_hint_and_starts_nothing(autostart):
    backend = ScriptedBackend(BackendError("unauthorized", "wrong token"))
    with pytest.raises(EditorError) as caught:
        backend.connect(autostart)
    assert str(caught.value) == "The backend refused the connection: wrong token. Fix the TOKEN setting."
    assert backend.clients[0].closed and backend.starts == []


def test_a_refusal_without_a_hint_has_no_trailing_space():
    backend = ScriptedBackend(BackendError("bad_request", "odd hello"))
    with pytest.raises(EditorError) as caught:
        backend.connect(None)
    assert str(caught.value) == "The backend refused the connection: odd hello."


# -- running the job --------------------------------------------------------------------------------
def _inpaint(answer, cancel_event=None):
    client = ScriptedClient(ADDRESS, None, {}, answer)
    progress = []
    result = session.inpaint(client, "request", EDITOR, lambda f, s: progress.append((f, s)), cancel_event)
    return result, client, progress


def test_inpaint_returns_the_result_and_forwards_the_cancel_event_only_when_given():
    result, client, progress = _inpaint("pixels")
    assert result == "pixels" and progress == [(0.0, "sending")]
    assert list(client.inpaint_calls[0][1]) == ["on_progress"]  # clients without cancel support still work
    event = threading.Event()
    _, client, _ = _inpaint("pixels", event)
    assert client.inpaint_calls[0][1]["cancel_event"] is event
    assert not client.closed  # closing is the caller's job


@pytest.mark.parametrize("error, message", [
    (BackendUnavailable("connection lost"), r"^The backend stopped while inpainting \(connection lost\)\. "
                                            r"Nothing was changed; restart the backend"),
    (BackendError("too_large", "image too big"), r"^The backend could not inpaint this selection: image too big\. "
                                                 r"Select a smaller area"),
    (BackendError("internal", "boom"), r"^The backend could not inpaint this selection: boom\.$"),
    (JobCancelled("server shutting down"), r"^The backend cancelled the job \(server shutting down\)\. "
                                           r"Nothing was changed\.$"),
])
def test_inpaint_failures_become_the_editor_error(error, message):
    with pytest.raises(EditorError, match=message):
        _inpaint(error)


def test_a_cancel_the_caller_can_ask_for_passes_through():
    with pytest.raises(JobCancelled):
        _inpaint(JobCancelled("cancelled by the user"), threading.Event())
    with pytest.raises(EditorError, match="stopped while inpainting"):  # other errors are still translated
        _inpaint(BackendUnavailable("gone"), threading.Event())
