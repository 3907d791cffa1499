"""TreeSampler: memory and CPU summed over a process tree, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil
import pytest

from corral.supervisor.monitor import TreeSampler, boot_ticks, same_process
from corral.testing import kill_tree, wait_for

# a parent whose child is started from a second thread (so it is listed in that
# thread's /proc children file), and which keeps 3 threads alive
TREE = textwrap.dedent(
    """
    import subprocess, sys, threading, time
    def spawn():
        hog = "import time; x = bytearray(30 << 20); time.sleep(60)"
        subprocess.Popen([sys.executable, "-c", hog])
    t = threading.Thread(target=spawn); t.start(); t.join()
    for _ in range(2):
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    time.sleep(60)
    """
)


@pytest.fixture
def tree():
    proc = subprocess.Popen([sys.executable, "-c", TREE], start_new_session=True)
    try:
        yield proc
    finally:
        kill_tree(proc.pid)
        proc.wait()


def test_sample_sums_the_tree_of_a_threaded_parent(tree):
    parent = psutil.Process(tree.pid)
    wait_for(lambda: len(parent.children()) == 1 and parent.num_threads() == 3)
    child = parent.children()[0]
    wait_for(lambda: child.memory_info().rss > 30 << 20, what="the child's 30 MiB")
    rss, _cpu = TreeSampler().sample([tree.pid])[tree.pid]
    expected = parent.memory_info().rss + child.memory_info().rss
    assert abs(rss - expected) < 2 << 20, (rss, expected)
    assert TreeSampler().descendants(tree.pid) == [child.pid]


def test_a_gone_pid_samples_as_nothing():
    gone = 2**22 + 1  # above the default pid_max of most systems
    assert TreeSampler().sample([gone]) == {gone: (0, 0.0)}


def test_a_start_bracket_names_one_process():
    before = boot_ticks()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    after = boot_ticks()
    try:
        if before is None:
            pytest.skip("no boot clock on this platform")
        assert same_process(proc.pid, (before, after))
        assert not same_process(proc.pid, (before - 500, before - 100))
    finally:
        proc.kill()
        proc.wait()
    assert not same_process(proc.pid, (before, after))
