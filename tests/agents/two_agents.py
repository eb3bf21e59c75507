"""Two agents at once, each with its own session, whose tool calls overlap.

    two_agents.py DIR

Forks itself twice (roles `a` and `b`). Each child opens session `s-ROLE`,
starts call `ROLE-read` (read_file of DIR/ROLE.txt) and, while it is open,
call `ROLE-sh` (bash: `cat DIR/ROLE-sh.txt`), so each agent has two calls
open at once: it reads ROLE.txt itself and `cat` reads ROLE-sh.txt. Both wait for the other to have its calls open before they act,
so the four calls overlap in time. Files under DIR/ROLE.ready are the
rendezvous. Exits 0 when both children did.
"""

import os
import subprocess
import sys
import time

import agent_monitor


def wait_for(path):
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {path}")
        time.sleep(0.01)


def agent(role, other, work):
    mine = os.path.join(work, role + ".txt")
    shell = os.path.join(work, role + "-sh.txt")
    client = agent_monitor.Client(required=True)
    with client.session(session_id="s-" + role, task="agent " + role):
        with client.tool_call("read_file", {"path": mine}, call_id=role + "-read"):
            with client.tool_call("bash", {"command": "cat " + shell}, call_id=role + "-sh"):
                open(os.path.join(work, role + ".ready"), "x").close()
                wait_for(os.path.join(work, other + ".ready"))
                with open(mine, "rb") as f:
                    f.read()
                subprocess.run(["/bin/sh", "-c", "cat " + shell], check=True, stdout=subprocess.DEVNULL)
                open(os.path.join(work, role + ".done"), "x").close()
                wait_for(os.path.join(work, other + ".done"))


def main():
    work = sys.argv[1]
    children = []
    for role, other in (("a", "b"), ("b", "a")):
        pid = os.fork()
        if pid == 0:
            agent(role, other, work)
            os._exit(0)
        children.append(pid)
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed |= status
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
