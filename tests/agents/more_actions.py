"""The rest of the action kinds for the end-to-end tests, in a directory
given on the command line: chown, link, symlink, truncate, memfd_create,
a signal aimed outside the agent's tree, and a tmpfs mount and unmount."""

import os
import signal
import subprocess
import sys

work = sys.argv[1]
outsider = int(sys.argv[2])

target = os.path.join(work, "t.txt")
with open(target, "w") as f:
    f.write("0123456789")
os.chown(target, 65534, -1)
os.link(target, os.path.join(work, "hard.txt"))
os.symlink("t.txt", os.path.join(work, "soft.txt"))
os.truncate(target, 4)
os.memfd_create("agent-scratch")
os.kill(outsider, 0)

mnt = os.path.join(work, "mnt")
os.mkdir(mnt)
subprocess.run(["mount", "-t", "tmpfs", "agent-tmpfs", mnt], check=True)
subprocess.run(["umount", mnt], check=True)
