"""Tests of agent_monitor against a fake monitor: a Unix stream server in a
thread that speaks docs/protocol.md, records every request line, and
replies in order.

Run: python3 -m unittest discover -s sdk/python -v
"""

import json
import os
import shutil
import socketserver
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_monitor as am  # noqa: E402

# Required fields of each request type (docs/protocol.schema.json), and
# every field the SDK may send for it.
REQUIRED = {
    "session.start": set(),
    "prompt": {"text"},
    "model.output": {"text"},
    "tool.start": {"call_id", "tool", "args"},
    "tool.end": {"call_id", "status"},
    "session.end": set(),
}
ALLOWED = {
    "session.start": {"session_id", "task", "user", "parent_session_id"},
    "prompt": {"text"},
    "model.output": {"text", "tool_calls"},
    "tool.start": {"call_id", "tool", "args", "effects", "tool_use_id"},
    "tool.end": {"call_id", "status", "result"},
    "session.end": set(),
}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            server = self.server
            with server.lock:
                server.raw.append(raw)
            msg = json.loads(raw)
            # Recorded without the id the client numbers its requests with,
            # so that tests compare what was declared; the reply echoes it.
            request_id = msg.pop("id", None)
            with server.lock:
                server.requests.append(msg)
                server.ids.append(request_id)
            if server.on_request is not None:
                action = server.on_request(msg)
                if action == "close":
                    return
                if action == "hang":
                    time.sleep(1.0)
                    return
            reply = server.respond(msg)
            if request_id is not None:
                reply["id"] = request_id
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class FakeMonitor(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path):
        super().__init__(path, Handler)
        self.lock = threading.Lock()
        self.raw = []
        self.ids = []
        self.requests = []
        self.deny = {}      # tool name -> (reason, rule)
        self.errors = {}    # request type -> (code, message)
        self.on_request = None
        self.delay = 0.0

    def respond(self, msg):
        t = msg.get("type")
        if self.delay:
            time.sleep(self.delay)
        if t in self.errors:
            code, message = self.errors[t]
            return {"ok": False, "error": {"code": code, "message": message}}
        if t == "session.start":
            return {"ok": True, "session_id": msg.get("session_id") or "srv-made-id"}
        if t == "agent.register":
            return {"ok": True, "session_id": "registered-" + msg["name"]}
        if t == "tool.start":
            if msg["tool"] in self.deny:
                reason, rule = self.deny[msg["tool"]]
                return {"ok": True, "decision": "deny", "reason": reason, "rule": rule}
            return {"ok": True, "decision": "allow", "reason": "allowed " + msg["tool"], "rule": "r-" + msg["tool"]}
        return {"ok": True}


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="am-test-")
        self.path = os.path.join(self.dir, "api.sock")
        self.server = FakeMonitor(self.path)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.saved_env = {k: os.environ.pop(k, None) for k in (am.SOCKET_ENV, am.SESSION_ENV)}
        am._default = None

    def tearDown(self):
        if am._default is not None:
            am._default.close()
        am._default = None
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir)

    def client(self, **kw):
        c = am.Client(self.path, **kw)
        self.addCleanup(c.close)
        return c

    def types(self):
        return [r["type"] for r in self.server.requests]


class WireFormat(Base):
    def test_every_message_matches_the_protocol(self):
        c = self.client()
        with c.session(task="t", user="ana", session_id="s1", parent_session_id="p1"):
            c.prompt("hi")
            c.model_output("I will list", tool_calls=[{"call_id": "c1", "tool": "ls", "args": {"path": "/"}}, "c2"])
            with c.tool_call("ls", {"path": "/"}, call_id="c1", tool_use_id="toolu_1",
                             effects={"file.read": ["/**"], "exec": ["/usr/bin/ls"]}) as call:
                call.set_result({"files": ["a", "b"]})
        self.assertEqual(self.types(), ["session.start", "prompt", "model.output",
                                        "tool.start", "tool.end", "session.end"])
        for raw, msg in zip(self.server.raw, self.server.requests):
            self.assertTrue(raw.endswith(b"\n"))
            self.assertEqual(raw.count(b"\n"), 1)
            keys = set(msg) - {"type"}
            self.assertLessEqual(REQUIRED[msg["type"]], keys, msg)
            self.assertLessEqual(keys, ALLOWED[msg["type"]], msg)
            self.assertFalse(any(v is None for v in msg.values()), "nulls are left out")
        self.assertEqual(self.server.ids, list(range(1, len(self.server.ids) + 1)),
                         "every request has an id of its own")
        r = self.server.requests
        self.assertEqual(r[0], {"type": "session.start", "session_id": "s1", "task": "t",
                                "user": "ana", "parent_session_id": "p1"})
        self.assertEqual(r[1], {"type": "prompt", "text": "hi"})
        self.assertEqual(r[2]["tool_calls"], [{"call_id": "c1", "tool": "ls", "args": {"path": "/"}}, "c2"])
        self.assertEqual(r[3], {"type": "tool.start", "call_id": "c1", "tool": "ls", "args": {"path": "/"},
                                "tool_use_id": "toolu_1",
                                "effects": {"file.read": ["/**"], "exec": ["/usr/bin/ls"]}})
        self.assertEqual(r[4], {"type": "tool.end", "call_id": "c1", "status": "ok",
                                "result": {"files": ["a", "b"]}})
        self.assertEqual(r[5], {"type": "session.end"})

    def test_minimal_messages_and_defaults(self):
        c = self.client()
        s = c.session()
        self.assertEqual(s.session_id, "srv-made-id")
        self.assertEqual(c.session_id, "srv-made-id")
        with c.tool_call("noop") as call:
            pass
        start, end = self.server.requests[1:3]
        self.assertEqual(start["args"], {})
        self.assertNotIn("effects", start)
        self.assertNotIn("tool_use_id", start)
        self.assertRegex(call.call_id, r"^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$")
        self.assertEqual(end, {"type": "tool.end", "call_id": call.call_id, "status": "ok"})
        self.assertEqual((call.decision, call.reason, call.rule, call.allowed),
                         ("allow", "allowed noop", "r-noop", True))

    def test_non_ascii_is_sent_as_utf8(self):
        c = self.client()
        c.prompt("résumé ☃")
        self.assertIn("résumé ☃".encode("utf-8"), self.server.raw[0])
        self.assertEqual(self.server.requests[0]["text"], "résumé ☃")


class Sessions(Base):
    def test_with_block_sends_session_end(self):
        with self.client().session(task="x") as s:
            self.assertFalse(s.ended)
        self.assertTrue(s.ended)
        self.assertEqual(self.types(), ["session.start", "session.end"])

    def test_session_end_sent_when_block_raises(self):
        with self.assertRaises(KeyError):
            with self.client().session():
                raise KeyError("x")
        self.assertEqual(self.types(), ["session.start", "session.end"])

    def test_callable_form_does_not_end(self):
        s = self.client().session(task="x")
        self.assertEqual(self.types(), ["session.start"])
        s.end()
        s.end()
        self.assertEqual(self.types(), ["session.start", "session.end"])

    def test_session_id_defaults_to_env(self):
        os.environ[am.SESSION_ENV] = "run-42"
        self.client().session(task="x")
        self.assertEqual(self.server.requests[0]["session_id"], "run-42")

    def test_module_level_functions_use_env(self):
        os.environ[am.SOCKET_ENV] = self.path
        os.environ[am.SESSION_ENV] = "run-7"
        with am.session(task="t") as s:
            am.prompt("p")
            am.model_output("m", tool_calls=["c1"])
            with am.tool_call("read_file", {"path": "/x"}, call_id="c1") as call:
                self.assertTrue(call.allowed)
        self.assertEqual(s.session_id, "run-7")
        self.assertEqual(self.types(), ["session.start", "prompt", "model.output",
                                        "tool.start", "tool.end", "session.end"])

    def test_configure_replaces_default_client(self):
        c = am.configure(self.path, required=True)
        self.assertIs(am.get_client(), c)
        am.prompt("p")
        self.assertEqual(self.types(), ["prompt"])


class Register(Base):
    def test_register_declares_for_the_new_session_and_exports_it(self):
        session_id = am.register("nightly", task="refactor", path=self.path)
        self.assertEqual(session_id, "registered-nightly")
        self.assertEqual(os.environ[am.SOCKET_ENV], self.path)
        self.assertEqual(os.environ[am.SESSION_ENV], "registered-nightly")
        am.prompt("p")
        first = self.server.requests[0]
        self.assertEqual(first["type"], "agent.register")
        self.assertEqual(first["name"], "nightly")
        self.assertEqual(first["task"], "refactor")
        self.assertNotIn("pid", first)
        self.assertEqual(self.types(), ["agent.register", "prompt"])
        self.assertEqual(am.get_client().session_id, "registered-nightly")

    def test_register_without_a_daemon_raises(self):
        with self.assertRaises(am.MonitorUnavailable):
            am.register("x", path=os.path.join(self.dir, "nobody.sock"))
        self.assertNotIn(am.SESSION_ENV, os.environ)

    def test_register_refused_raises(self):
        self.server.errors["agent.register"] = ("not_registered", "pid 1 already belongs to agent a")
        with self.assertRaises(am.DeclarationError) as raised:
            am.register("x", path=self.path)
        self.assertEqual(raised.exception.code, "not_registered")


class ToolCalls(Base):
    def test_exception_sends_error_and_propagates(self):
        c = self.client()
        with self.assertRaises(ValueError):
            with c.tool_call("bash", {"command": "x"}, call_id="c1"):
                raise ValueError("boom")
        self.assertEqual(self.server.requests[-1],
                         {"type": "tool.end", "call_id": "c1", "status": "error", "result": "ValueError('boom')"})

    def test_deny_raises_and_closes_the_call(self):
        self.server.deny["upload"] = ("no rule allows it", None)
        c = self.client()
        ran = []
        with self.assertRaises(am.ToolCallDenied) as cm:
            with c.tool_call("upload", {"url": "https://x"}, call_id="c2"):
                ran.append(1)
        self.assertEqual(ran, [])
        self.assertEqual((cm.exception.reason, cm.exception.rule, cm.exception.call_id),
                         ("no rule allows it", None, "c2"))
        self.assertEqual(self.server.requests[-1],
                         {"type": "tool.end", "call_id": "c2", "status": "error", "result": {"denied": True}})
        self.assertEqual(self.types(), ["tool.start", "tool.end"])

    def test_deny_without_raising(self):
        self.server.deny["upload"] = ("nope", "rule-9")
        c = self.client()
        with c.tool_call("upload", raise_on_deny=False, call_id="c3") as call:
            self.assertFalse(call.allowed)
            self.assertEqual((call.decision, call.reason, call.rule), ("deny", "nope", "rule-9"))
        self.assertEqual(self.types(), ["tool.start", "tool.end"])
        self.assertEqual(self.server.requests[-1],
                         {"type": "tool.end", "call_id": "c3", "status": "error", "result": {"denied": True}})

    def test_unencodable_result_is_sent_as_repr(self):
        c = self.client()
        with c.tool_call("t", call_id="c4") as call:
            call.set_result({"data": b"\x00"})
        self.assertEqual(self.server.requests[-1]["result"], {"data": "b'\\x00'"})


class Errors(Base):
    def test_ok_false_raises_declaration_error(self):
        self.server.errors["prompt"] = ("no_session", "no current session")
        c = self.client()
        with self.assertRaises(am.DeclarationError) as cm:
            c.prompt("x")
        self.assertEqual((cm.exception.code, cm.exception.message), ("no_session", "no current session"))
        c.model_output("still usable")  # a refused line costs only its own reply
        self.assertEqual(self.types(), ["prompt", "model.output"])

    def test_tool_start_refused_raises(self):
        self.server.errors["tool.start"] = ("duplicate_call_id", "dup")
        with self.assertRaises(am.DeclarationError):
            with self.client().tool_call("t", call_id="c1"):
                self.fail("the block must not run")
        self.assertEqual(self.types(), ["tool.start"])

    def test_tool_end_error_does_not_hide_the_agents_exception(self):
        self.server.errors["tool.end"] = ("unknown_call_id", "x")
        with self.assertRaises(ZeroDivisionError):
            with self.client().tool_call("t"):
                1 / 0

    def test_disabled_when_env_unset(self):
        c = am.Client()
        self.assertFalse(c.enabled)
        with c.session(task="x") as s:
            self.assertIsNone(s.session_id)
            self.assertIsNone(c.prompt("p"))
            c.model_output("m", tool_calls=["c1"])
            with c.tool_call("bash", {"command": "rm -rf /"}) as call:
                self.assertTrue(call.allowed)
                self.assertEqual(call.decision, "allow")
        self.assertEqual(self.server.requests, [])

    def test_disabled_module_functions_when_env_unset(self):
        with am.session(task="x"):
            am.prompt("p")
            with am.tool_call("t") as call:
                self.assertTrue(call.allowed)
        self.assertFalse(am.get_client().enabled)

    def test_disabled_when_connect_fails(self):
        c = am.Client(os.path.join(self.dir, "missing.sock"))
        self.assertFalse(c.enabled)
        with c.tool_call("t") as call:
            self.assertTrue(call.allowed)

    def test_required_raises(self):
        with self.assertRaises(am.MonitorUnavailable):
            am.Client(required=True)
        with self.assertRaises(am.MonitorUnavailable):
            am.Client(os.path.join(self.dir, "missing.sock"), required=True)

    def test_connection_lost(self):
        self.server.on_request = lambda msg: "close"
        c = self.client()
        self.assertIsNone(c.prompt("x"))
        self.assertFalse(c.enabled)
        with self.assertRaises(am.MonitorUnavailable):
            self.client(required=True).prompt("x")

    def test_timeout(self):
        self.server.on_request = lambda msg: "hang"
        with self.assertRaises(am.MonitorUnavailable):
            self.client(timeout=0.2, required=True).prompt("x")
        c = self.client(timeout=0.2)
        with c.tool_call("t") as call:  # fails open when not required
            self.assertTrue(call.allowed)
        self.assertFalse(c.enabled)


class Concurrency(Base):
    def test_two_threads_get_their_own_replies(self):
        self.server.delay = 0.001
        self.server.deny["b"] = ("b is denied", "rule-b")
        c = self.client()
        failures = []

        def work(tool, want):
            for i in range(50):
                with c.tool_call(tool, {"i": i}, raise_on_deny=False) as call:
                    if call.decision != want:
                        failures.append((tool, i, call.decision))

        threads = [threading.Thread(target=work, args=("a", "allow")),
                   threading.Thread(target=work, args=("b", "deny"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual(len(self.server.requests), 200)
        # Both threads' calls were in flight together at some point.
        tools = [r.get("tool") for r in self.server.requests if r["type"] == "tool.start"]
        self.assertIn("a", tools[:60])
        self.assertIn("b", tools[:60])


if __name__ == "__main__":
    unittest.main()


class Robustness(unittest.TestCase):
    """What a shared or confused connection must never turn into."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "s.sock")
        self.server = FakeMonitor(self.path)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def test_a_reply_without_a_decision_is_not_an_allow(self):
        self.server.respond = lambda msg: {"ok": True}
        c = am.Client(self.path)
        with self.assertRaises(am.DeclarationError) as err:
            with c.tool_call("bash", {"command": "ls"}):
                self.fail("a call without a decision must not run")
        self.assertEqual(err.exception.code, "bad_reply")

    def test_a_forked_child_gets_its_own_connection(self):
        c = am.Client(self.path)
        c.prompt("parent")
        pid = os.fork()
        if pid == 0:
            try:
                c.prompt("child")
                os._exit(0 if c.enabled else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        c.prompt("parent again")
        texts = [m["text"] for m in self.server.requests]
        self.assertEqual(sorted(texts), ["child", "parent", "parent again"])
