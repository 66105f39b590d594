"""signal_feed.py OUT K TOOL ARGS...: feeds the records of stdin to TOOL through a pipe one at a time, each
written only once the tool has taken the one before (the pipe empty), sends SIGTERM after K records, then goes
on writing a record every 20 ms as an upstream that does not stop would. Prints the tool's exit status and the
seconds from the signal to its exit; its stdout goes to OUT, its stderr to ours."""
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time

import msgpack

out, k, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
data = sys.stdin.buffer.read()
unp = msgpack.Unpacker(raw=False)
unp.feed(data)
ends = []
while True:
    try:
        unp.skip()
    except msgpack.OutOfData:
        break
    ends.append(unp.tell())
r, w = os.pipe()
with open(out, "wb") as o:
    p = subprocess.Popen(cmd, stdin=r, stdout=o)
os.close(r)


def pending():
    return struct.unpack("i", fcntl.ioctl(w, termios.FIONREAD, b"\0\0\0\0"))[0]


start = 0
for i in range(k):
    os.write(w, data[start:ends[i]])
    start = ends[i]
    while pending():
        time.sleep(0.002)
p.send_signal(signal.SIGTERM)
t0 = time.time()
i = k
while p.poll() is None and i < len(ends) and time.time() - t0 < 10:
    try:
        os.write(w, data[start:ends[i]])
    except BrokenPipeError:
        break
    start = ends[i]
    i += 1
    time.sleep(0.02)
try:
    rc = p.wait(10)
except subprocess.TimeoutExpired:
    p.kill()
    rc = "running"
print(rc, "%.1f" % (time.time() - t0))
