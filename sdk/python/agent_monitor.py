"""Declare what an AI agent does to agent-monitor.

The monitor watches the agent's processes with eBPF and matches what they
do against what the agent *declares* here: its session, its prompts, what
its model answered, and each tool call. The protocol is in
docs/protocol.md: newline-delimited JSON over a Unix stream socket, one
reply line per request, in order.

    import agent_monitor

    with agent_monitor.session(task="summarise /srv/data"):
        agent_monitor.prompt("Summarise the files in /srv/data.")
        with agent_monitor.tool_call("list_dir", {"path": "/srv/data"}) as call:
            call.set_result(os.listdir("/srv/data"))

Without a monitor (no socket given, none in $AGENT_MONITOR_SOCKET, or the
connection fails) the client is *disabled*: every call is a no-op and every
tool call is allowed, so an agent runs the same with or without the
monitor. Pass required=True to get MonitorUnavailable instead.

Stdlib only, and only modules Python has mostly loaded anyway: every file
the agent opens, module files included, is evidence the monitor records.
"""

import json
import os
import socket
import threading

__all__ = [
    "Client", "Session", "ToolCall", "MonitorError", "MonitorUnavailable",
    "DeclarationError", "ToolCallDenied", "configure", "get_client",
    "session", "prompt", "model_output", "tool_call", "register",
]

SOCKET_ENV = "AGENT_MONITOR_SOCKET"
SESSION_ENV = "AGENT_MONITOR_SESSION"
DEFAULT_TIMEOUT = 10.0
#: Where `agent-monitor daemon` listens unless its config says otherwise.
DAEMON_SOCKET = "/run/agent-monitor/api.sock"


class MonitorError(Exception):
    """Base class of this module's errors."""


class MonitorUnavailable(MonitorError):
    """The monitor cannot be reached, and the client was made with required=True."""


class DeclarationError(MonitorError):
    """The monitor refused a request (an ok:false reply); nothing of it was recorded.

    `code` is the protocol's stable error code (bad_field, no_session, ...).
    """

    def __init__(self, code, message):
        super().__init__("{}: {}".format(code, message))
        self.code = code
        self.message = message


class ToolCallDenied(MonitorError):
    """The policy denied a tool call: the agent must not run it."""

    def __init__(self, reason, rule, call_id=None):
        super().__init__("tool call denied: {} (rule: {})".format(reason, rule))
        self.reason = reason
        self.rule = rule
        self.call_id = call_id


def _call_id():
    """A fresh UUID4 as 32 hex digits.

    Built from os.urandom rather than the uuid module, which loads a C
    extension and libuuid: files the monitor would record as the agent's.
    """
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    return b.hex()


class Client:
    """One connection to the monitor. Thread-safe: a lock spans each request
    and its reply, which is enough because replies come in request order.

    The connection has one *current session* (see docs/protocol.md), so
    threads sharing a client share a session. Under `agent-monitor run` the
    run's session is current from the start.

    Fork-safe: a child process that inherits a client (multiprocessing,
    os.fork) gets a connection of its own at its first request, since the
    monitor binds tool calls to the process that connected, and a shared
    socket would mix two processes' replies. Every request carries an id,
    and a reply with another id is a broken connection, never an answer.
    """

    def __init__(self, path=None, session_id=None, timeout=DEFAULT_TIMEOUT, required=False):
        self.path = path or os.environ.get(SOCKET_ENV) or None
        #: The session declarations go to; defaults to $AGENT_MONITOR_SESSION.
        self.session_id = session_id or os.environ.get(SESSION_ENV) or None
        self.timeout = timeout
        self.required = required
        self._lock = threading.Lock()
        self._sock = None
        self._buf = b""
        self._pid = os.getpid()
        self._next_id = 0
        if self.path is None:
            if required:
                raise MonitorUnavailable("no socket path given and ${} is not set".format(SOCKET_ENV))
            return
        self._connect()

    def _connect(self):
        """Open this process's connection; disabled (or raising, if
        required) when the monitor cannot be reached."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            if self.required:
                raise MonitorUnavailable("cannot connect to {}: {}".format(self.path, e)) from e
            return
        self._sock, self._buf, self._pid = sock, b"", os.getpid()

    @property
    def enabled(self):
        """False when there is no connection: requests are then no-ops."""
        return self._sock is not None

    def close(self):
        """Close the connection; the client is disabled from then on."""
        with self._lock:
            self._close()

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._buf = None, b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, type, **fields):
        """Send one request and return its reply as a dict.

        Fields set to None are left out (the protocol treats null as absent).
        Raises DeclarationError on an ok:false reply. A disabled client
        returns {"ok": True, "disabled": True} without sending anything.

        A broken connection (timeout, reset, EOF, unreadable reply) is closed
        rather than reused, since a late reply would be taken for the next
        request's: the client then raises MonitorUnavailable if required,
        and otherwise disables itself and returns as a disabled client does.
        """
        msg = {"type": type}
        msg.update((k, v) for k, v in fields.items() if v is not None)
        with self._lock:
            if self._sock is not None and self._pid != os.getpid():
                # A forked child: the inherited socket is the parent's.
                self._sock.close()
                self._sock = None
                self._connect()
            if self._sock is None:
                return {"ok": True, "disabled": True}
            self._next_id += 1
            msg["id"] = self._next_id
            line = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=repr)
            try:
                self._sock.sendall(line.encode("utf-8") + b"\n")
                reply = json.loads(self._readline())
                if not isinstance(reply, dict):
                    raise ValueError("reply is not a JSON object")
                if reply.get("id") != msg["id"]:
                    raise ValueError("reply to another request (id {!r}, expected {})".format(
                        reply.get("id"), msg["id"]))
            except (OSError, ValueError) as e:
                self._close()
                if self.required:
                    raise MonitorUnavailable("connection to {} lost: {}".format(self.path, e)) from e
                return {"ok": True, "disabled": True}
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise DeclarationError(err.get("code", "unknown"), err.get("message", ""))
        return reply

    def _readline(self):
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("monitor closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8")

    def session(self, task=None, user=None, session_id=None, parent_session_id=None):
        """Declare a session (session.start) and return it as a Session.

        session_id defaults to the client's (normally $AGENT_MONITOR_SESSION),
        which under `agent-monitor run` names the run's own open session.
        Use the result in a with-block to send session.end at its end.
        """
        sid = session_id or self.session_id
        reply = self.request("session.start", session_id=sid, task=task, user=user,
                             parent_session_id=parent_session_id)
        self.session_id = reply.get("session_id") or sid
        return Session(self, self.session_id)

    def register(self, name, task=None, pid=None):
        """Make this process (or pid, one of its descendants) and its
        descendants an agent named name, monitored by the daemon
        (agent.register). Returns the new session's id, which becomes the
        client's; this connection then declares for that agent."""
        reply = self.request("agent.register", name=name, task=task, pid=pid)
        self.session_id = reply.get("session_id") or self.session_id
        return self.session_id

    def prompt(self, text):
        """Declare a prompt given to the model."""
        self.request("prompt", text=text)

    def model_output(self, text, tool_calls=None):
        """Declare what the model answered. tool_calls: call ids, or dicts
        with call_id (and tool, args), each later run under the same call_id."""
        self.request("model.output", text=text, tool_calls=tool_calls)

    def tool_call(self, tool, args=None, call_id=None, effects=None, raise_on_deny=True,
                  tool_use_id=None):
        """A ToolCall context manager: tool.start on enter, tool.end on exit."""
        return ToolCall(self, tool, args, call_id, effects, raise_on_deny, tool_use_id)


class Session:
    """A declared session. As a context manager it ends the session on exit,
    exception or not: the agent is done with it either way."""

    def __init__(self, client, session_id):
        self.client = client
        self.session_id = session_id
        self.ended = False

    def end(self):
        """Send session.end (once)."""
        if not self.ended:
            self.ended = True
            self.client.request("session.end")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.end()
        else:
            try:
                self.end()
            except MonitorError:
                pass  # the agent's own exception matters more


class ToolCall:
    """One declared tool call, as a context manager.

    Entering sends tool.start and keeps the policy's answer in .decision,
    .reason, .rule and .allowed. Leaving sends tool.end: status "ok", or
    "error" with the exception's repr as result when one escapes the block
    (it still propagates). .set_result(value) attaches a JSON result.

    A denied call: entering raises ToolCallDenied, unless raise_on_deny is
    False, in which case the block runs and must check .allowed itself.
    Either way the monitor is sent tool.end with status "error" and result
    {"denied": true}, so no call stays open in its records; the block
    never ran the tool, so "error" is what the call amounted to.

    With a disabled client nothing is sent and the call is allowed.

    tool_use_id is the model's id of the call (Anthropic's tool_use id,
    OpenAI's tool-call id): an OpenTelemetry span or a hook that declares
    the same call with it joins this one (docs/protocol.md, "Linked
    declarations").
    """

    def __init__(self, client, tool, args=None, call_id=None, effects=None, raise_on_deny=True,
                 tool_use_id=None):
        self.client = client
        self.tool_use_id = tool_use_id
        self.tool = tool
        self.args = {} if args is None else args
        self.call_id = call_id or _call_id()
        self.effects = effects
        self.raise_on_deny = raise_on_deny
        self.decision = None
        self.reason = None
        self.rule = None
        self._result = None
        self._has_result = False
        self._ended = False

    @property
    def allowed(self):
        return self.decision != "deny"

    def set_result(self, value):
        """Attach a JSON value to tool.end (values json cannot encode are sent as their repr)."""
        self._result, self._has_result = value, True

    def __enter__(self):
        reply = self.client.request("tool.start", call_id=self.call_id, tool=self.tool,
                                    args=self.args, effects=self.effects,
                                    tool_use_id=self.tool_use_id)
        if reply.get("disabled"):
            self._ended = True  # nothing was started, so nothing to end
            self.decision, self.reason = "allow", "monitor not connected"
        else:
            self.decision = reply.get("decision")
            self.reason, self.rule = reply.get("reason"), reply.get("rule")
            if self.decision not in ("allow", "deny"):
                # Never guess "allow": an answer without a decision is not one.
                self._ended = True
                raise DeclarationError("bad_reply", "tool.start reply has no decision: {!r}".format(reply))
        if not self.allowed and self.raise_on_deny:
            self._end("error", {"denied": True})
            raise ToolCallDenied(self.reason, self.rule, self.call_id)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            try:
                self._end("error", repr(exc))
            except MonitorError:
                pass  # do not hide the agent's own exception
        elif not self.allowed:
            self._end("error", self._result if self._has_result else {"denied": True})
        else:
            self._end("ok", self._result)

    def _end(self, status, result):
        if not self._ended:
            self._ended = True
            self.client.request("tool.end", call_id=self.call_id, status=status, result=result)


_default = None
_default_lock = threading.Lock()


def configure(path=None, session_id=None, timeout=DEFAULT_TIMEOUT, required=False):
    """Replace the default client used by the module-level functions."""
    global _default
    client = Client(path, session_id, timeout, required)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def get_client():
    """The default client, created from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def session(task=None, user=None, session_id=None, parent_session_id=None):
    """Declare a session on the default client; see Client.session."""
    return get_client().session(task, user, session_id, parent_session_id)


def register(name, task=None, path=None, timeout=DEFAULT_TIMEOUT):
    """Register this process with a running daemon as the agent name, and
    make the module's client declare for it. path defaults to
    $AGENT_MONITOR_SOCKET, else the daemon's default socket. The socket and
    the session are put in os.environ, so that children started from now on
    declare to the same session. Raises MonitorUnavailable when no daemon
    answers: registering is asked for explicitly, so it never fails quietly.
    """
    global _default
    path = path or os.environ.get(SOCKET_ENV) or DAEMON_SOCKET
    client = Client(path=path, timeout=timeout, required=True)
    session_id = client.register(name, task=task)
    os.environ[SOCKET_ENV] = path
    os.environ[SESSION_ENV] = session_id
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return session_id


def prompt(text):
    """Declare a prompt on the default client."""
    get_client().prompt(text)


def model_output(text, tool_calls=None):
    """Declare a model answer on the default client."""
    get_client().model_output(text, tool_calls)


def tool_call(tool, args=None, call_id=None, effects=None, raise_on_deny=True, tool_use_id=None):
    """A tool call on the default client; see ToolCall."""
    return get_client().tool_call(tool, args, call_id, effects, raise_on_deny, tool_use_id)
