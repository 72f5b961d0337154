"""The process sampler keeps no figure of a process that is gone, and a reused pid starts from scratch."""

from __future__ import annotations

import subprocess
import sys

from rmqtui.engine.stats import ProcessSampler


def test_every_cache_is_pruned_when_processes_go():
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(5)]
    pids = [p.pid for p in procs]
    sampler = ProcessSampler(lambda: pids)
    try:
        sampler.sample_once()
        sampler.sample_once()
        sizes = sampler.cache_sizes()
        assert sizes["samples"] == 5 and sizes["cpu"] >= 5 and sizes["created"] >= 5, sizes
    finally:
        for p in procs:
            p.kill()
            p.wait()
    pids = []
    sampler.sample_once()
    sizes = sampler.cache_sizes()
    assert sizes["samples"] == 0, sizes
    assert sizes["procs"] + sizes["uss"] + sizes["created"] + sizes["cpu"] + sizes["fds"] <= 4, \
        f"stale pids kept: {sizes}"


def test_a_reused_pid_never_shows_a_negative_cpu():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = ProcessSampler(lambda: [p.pid])
        sampler.sample_once()
        # pretend the pid named another, older process that had burned a lot of CPU
        when, _ = sampler._cpu[p.pid]
        sampler._cpu[p.pid] = (when, 1e6)
        sampler._created[p.pid] -= 1000.0
        sampler.sample_once()
        sample = sampler.get(p.pid)
        assert sample.cpu_percent is None, f"a new process under a reused pid inherited a baseline: {sample}"
        sampler.sample_once()
        assert sampler.get(p.pid).cpu_percent >= 0.0
    finally:
        p.kill()
        p.wait()


def test_the_sampler_reports_its_own_process():
    sampler = ProcessSampler(lambda: [])
    sampler.sample_once()
    sampler.sample_once()
    assert sampler.own is not None and sampler.own.rss > 0 and sampler.own.cpu_percent is not None


def test_idle_processes_are_sampled_every_few_passes_and_busy_ones_every_pass():
    from rmqtui.engine.stats import IDLE_EVERY

    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
    busy_pid, idle_pid = procs[0].pid, procs[1].pid
    sampler = ProcessSampler(lambda: [busy_pid, idle_pid], busy=lambda: frozenset({busy_pid}))
    try:
        sampler.sample_once()
        first = {p: sampler.get(p) for p in (busy_pid, idle_pid)}
        kept = 0
        for _ in range(IDLE_EVERY):
            sampler.sample_once()
            assert sampler.get(busy_pid) is not first[busy_pid], "a busy process is sampled every pass"
            kept += sampler.get(idle_pid) is first[idle_pid]
            first[idle_pid] = sampler.get(idle_pid)
        assert kept == IDLE_EVERY - 1, f"an idle one is sampled once every {IDLE_EVERY} passes, kept {kept} times"
    finally:
        for p in procs:
            p.kill()
            p.wait()
