"""Captures of file descriptor 2 from several threads at once (emolib predict's workers decode files side by side)
leave stderr working, and the CLI's own lines are never swallowed by another thread's capture."""
import subprocess
import sys

CODE = r'''
import sys, threading, time
from emolib.core.quiet import captured_native_stderr, print_stderr

def grab():
    for _ in range(200):
        with captured_native_stderr():
            time.sleep(0.0005)

def say():
    for i in range(50):
        print_stderr(f"line {i}")
        time.sleep(0.001)

threads = [threading.Thread(target=grab) for _ in range(4)] + [threading.Thread(target=say)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("after", file=sys.stderr, flush=True)
'''


def test_concurrent_captures_restore_stderr_and_keep_printed_lines():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [f"line {i}" for i in range(50)] + ["after"]
