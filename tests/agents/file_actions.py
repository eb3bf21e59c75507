"""File actions for the end-to-end tests, each done once, in a directory
given on the command line: create, read, rename, unlink, mkdir, chmod, a
missing file, and relative paths through chdir and through a dirfd."""

import os
import sys

work = sys.argv[1]
os.chdir(work)

with open(os.path.join(work, "created.txt"), "w") as f:  # absolute, new
    f.write("x")
with open("/etc/hostname") as f:
    f.read()
os.rename(os.path.join(work, "created.txt"), os.path.join(work, "renamed.txt"))
os.mkdir(os.path.join(work, "sub"), 0o750)
os.chmod(os.path.join(work, "renamed.txt"), 0o600)
os.unlink(os.path.join(work, "renamed.txt"))
try:
    open(os.path.join(work, "missing.txt"))
except FileNotFoundError:
    pass

# Relative to the working directory (chdir above).
with open("relative.txt", "w") as f:
    f.write("y")
# Relative to a directory fd.
dirfd = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
fd = os.open("via-dirfd.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dirfd)
os.close(fd)
os.close(dirfd)
