"""A burst of file opens for the durability tests: writes its pid to the
marker file, opens /dev/null COUNT times, then lingers for LINGER seconds
so that the monitor is still running when the test acts."""

import os
import sys
import time

count, marker, linger = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with open(marker + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(marker + ".tmp", marker)
for _ in range(count):
    os.close(os.open("/dev/null", os.O_RDONLY))
time.sleep(linger)
