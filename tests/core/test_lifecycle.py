"""The state table, edge by edge, and the restart maths of PM2's handleExit."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from corral.errors import CorralError, OptionError
from corral.supervisor.lifecycle import (
    EXP_BACKOFF_MAX_MS,
    EXP_BACKOFF_RESET_MS,
    RUNNING_STATES,
    SIGNALLABLE_STATES,
    STOPPED_STATES,
    TRANSITIONS,
    Event,
    IllegalTransition,
    ProcessState,
    RestartHistory,
    RestartPolicy,
    decide_exit,
    next_state,
    on_manual_restart,
    on_spawn,
    on_start,
    reset_backoff_if_stable,
    restart_delay,
)

S, E = ProcessState, Event
T0 = 1_700_000_000_000  # an epoch in ms; every test runs on simulated time

# Written out again here, so a slip in the module's table shows up as a failure.
EXPECTED = {
    (S.STOPPED, E.SPAWN): S.LAUNCHING,
    (S.ERRORED, E.SPAWN): S.LAUNCHING,
    (S.WAITING_RESTART, E.SPAWN): S.LAUNCHING,
    (S.LAUNCHING, E.READY): S.ONLINE,
    (S.LAUNCHING, E.SPAWN_FAILED): S.ERRORED,
    (S.LAUNCHING, E.STOP): S.STOPPING,
    (S.ONLINE, E.STOP): S.STOPPING,
    (S.WAITING_RESTART, E.STOP): S.STOPPED,
    (S.STOPPING, E.EXITED): S.STOPPED,
    (S.STOPPING, E.KILL_FAILED): S.ERRORED,
    (S.LAUNCHING, E.CRASHED): S.WAITING_RESTART,
    (S.ONLINE, E.CRASHED): S.WAITING_RESTART,
    (S.LAUNCHING, E.FINISHED): S.STOPPED,
    (S.ONLINE, E.FINISHED): S.STOPPED,
    (S.LAUNCHING, E.OVERLIMIT): S.ERRORED,
    (S.ONLINE, E.OVERLIMIT): S.ERRORED,
    (S.ONLINE, E.RELOAD): S.LAUNCHING,
    (S.LAUNCHING, E.ROLLBACK): S.ONLINE,
}
ALL_PAIRS = list(itertools.product(ProcessState, Event))


def test_values_are_pm2_words():
    assert [s.value for s in ProcessState] == [
        "launching",
        "online",
        "stopping",
        "stopped",
        "errored",
        "waiting restart",
    ]
    assert S.ONLINE == "online"  # str enum: compares and serialises as PM2's status


def test_groups():
    assert RUNNING_STATES == {S.LAUNCHING, S.ONLINE}
    assert SIGNALLABLE_STATES == {S.LAUNCHING, S.ONLINE, S.STOPPING}
    assert STOPPED_STATES == {S.STOPPED, S.ERRORED}


def test_table_is_exactly_the_expected_edges():
    assert dict(TRANSITIONS) == EXPECTED


def test_table_is_read_only():
    with pytest.raises(TypeError):
        TRANSITIONS[(S.STOPPED, E.READY)] = S.ONLINE  # type: ignore[index]


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda x: x.value)
def test_every_pair(state, event):
    if (state, event) in EXPECTED:
        assert next_state(state, event) is EXPECTED[(state, event)]
        return
    with pytest.raises(IllegalTransition) as info:
        next_state(state, event)
    assert str(info.value) == f"cannot '{event.value}' a process that is '{state.value}'"
    assert (info.value.state, info.value.event) == (state, event)
    assert isinstance(info.value, CorralError)


def test_message_example():
    with pytest.raises(IllegalTransition, match="cannot 'ready' a process that is 'stopped'"):
        next_state(S.STOPPED, E.READY)


def test_accepts_plain_strings():
    assert next_state("waiting restart", "spawn") is S.LAUNCHING


def test_only_live_states_exit_and_only_rest_states_spawn():
    exits = {E.EXITED, E.CRASHED, E.FINISHED, E.OVERLIMIT, E.KILL_FAILED}
    for (state, event), target in TRANSITIONS.items():
        if event in exits:
            assert state in SIGNALLABLE_STATES
        if event is E.SPAWN:
            assert state not in SIGNALLABLE_STATES and target is S.LAUNCHING
    assert all(state not in SIGNALLABLE_STATES for state in STOPPED_STATES)


# --- policy from options ---------------------------------------------------------------


def test_policy_defaults():
    assert RestartPolicy.from_options({}) == RestartPolicy()
    assert RestartPolicy.from_options(dict.fromkeys(["min_uptime", "max_restarts"])) == (
        RestartPolicy()
    )
    p = RestartPolicy()
    assert (p.autorestart, p.stop_exit_codes, p.min_uptime, p.max_restarts) == (
        True,
        frozenset(),
        1000,
        16,
    )
    assert (p.restart_delay, p.exp_backoff_restart_delay) == (0, 0)


def test_policy_from_options():
    policy = RestartPolicy.from_options(
        {
            "autorestart": False,
            "stop_exit_codes": [0, "3"],
            "min_uptime": 500,
            "max_restarts": 3,
            "restart_delay": 250,
            "exp_backoff_restart_delay": 100,
            "name": "ignored: not a restart option",
        }
    )
    assert policy == RestartPolicy(False, frozenset({0, 3}), 500, 3, 250, 100)


@pytest.mark.parametrize(("given", "codes"), [(3, {3}), ([0, 2], {0, 2}), ("3", {3}), ([], set())])
def test_stop_exit_codes_int_or_list(given, codes):
    assert RestartPolicy.from_options({"stop_exit_codes": given}).stop_exit_codes == codes


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_restarts": "abc"}, "max_restarts"),
        ({"min_uptime": -1}, "min_uptime"),
        ({"restart_delay": True}, "restart_delay"),
        ({"autorestart": "maybe"}, "autorestart"),
        ({"stop_exit_codes": ["x"]}, "stop_exit_codes"),
    ],
)
def test_bad_option_names_the_field(options, field):
    with pytest.raises(OptionError, match=field) as info:
        RestartPolicy.from_options(options)
    assert info.value.field == field


# --- decide_exit -------------------------------------------------------------------------


def started(now=T0, uptime_at=None):
    """The history of an app the user started at ``now`` and spawned at ``uptime_at``."""
    return on_spawn(on_start(RestartHistory(), now), uptime_at or now, is_restart=False)


def replace_unstable(history, n):
    return replace(history, unstable_restarts=n)


def test_exit_while_stopping_is_the_stop_completing():
    history = replace_unstable(started(), 5)
    d = decide_exit(S.STOPPING, RestartPolicy(), history, 0, T0 + 10)
    assert (d.event, d.state, d.delay_ms, d.reason) == (E.EXITED, S.STOPPED, 0, "stopped by user")
    assert d.history == history


def test_autorestart_false_finishes():
    history = started()
    d = decide_exit(S.ONLINE, RestartPolicy(autorestart=False), history, 1, T0 + 10)
    assert (d.event, d.state, d.delay_ms) == (E.FINISHED, S.STOPPED, 0)
    assert d.reason == "autorestart is false"
    assert d.history == history  # a short exit that is not restarted is not unstable


@pytest.mark.parametrize("codes", [3, [3], [0, 3]])
def test_stop_exit_codes_finish(codes):
    policy = RestartPolicy.from_options({"stop_exit_codes": codes})
    d = decide_exit(S.ONLINE, policy, started(), 3, T0 + 5000)
    assert (d.event, d.state) == (E.FINISHED, S.STOPPED)
    assert d.reason == "exit code 3 is in stop_exit_codes"
    other = decide_exit(S.ONLINE, policy, started(), 1, T0 + 5000)
    assert other.event is E.CRASHED


def test_killed_by_signal_is_a_crash():
    policy = RestartPolicy(stop_exit_codes=frozenset({0}))
    assert decide_exit(S.ONLINE, policy, started(), None, T0 + 5000).event is E.CRASHED


def test_stable_crash_restarts_without_counting():
    d = decide_exit(S.ONLINE, RestartPolicy(), started(), 1, T0 + 1000)  # uptime == min_uptime
    assert (d.event, d.state, d.delay_ms, d.reason) == (
        E.CRASHED,
        S.WAITING_RESTART,
        0,
        "restart in 0 ms",
    )
    assert d.history.unstable_restarts == 0


def test_unstable_crash_counts():
    d = decide_exit(S.LAUNCHING, RestartPolicy(), started(), 1, T0 + 999)
    assert (d.event, d.state) == (E.CRASHED, S.WAITING_RESTART)
    assert d.history.unstable_restarts == 1


def test_unstable_only_inside_the_window_since_start():
    policy = RestartPolicy(min_uptime=1000, max_restarts=4)
    # the app was started 4 s ago (the whole window), spawned 10 ms ago: not counted
    history = started(T0, uptime_at=T0 + 3990)
    assert decide_exit(S.ONLINE, policy, history, 1, T0 + 4000).history.unstable_restarts == 0
    assert decide_exit(S.ONLINE, policy, history, 1, T0 + 3999).history.unstable_restarts == 1


def test_no_created_at_never_counts():
    history = on_spawn(RestartHistory(created_at=None), T0, is_restart=True)
    d = decide_exit(S.ONLINE, RestartPolicy(), history, 1, T0 + 1)
    assert d.event is E.CRASHED and d.history.unstable_restarts == 0


def test_overlimit_errors_and_resets():
    history = replace_unstable(started(), 15)
    d = decide_exit(S.ONLINE, RestartPolicy(), history, 1, T0 + 10)
    assert (d.event, d.state, d.delay_ms) == (E.OVERLIMIT, S.ERRORED, 0)
    assert d.reason == "unstable restarts reached max_restarts (16)"
    assert (d.history.unstable_restarts, d.history.created_at) == (0, None)


def test_overlimit_with_a_delay_stays_errored():
    # PM2 shows 'waiting restart' forever here; corral keeps 'errored'
    policy = RestartPolicy(max_restarts=1, restart_delay=500, exp_backoff_restart_delay=100)
    d = decide_exit(S.ONLINE, policy, started(), 1, T0 + 10)
    assert (d.state, d.delay_ms) == (S.ERRORED, 0)


def test_max_restarts_1_errors_on_first_unstable_exit():
    policy = RestartPolicy(max_restarts=1)
    assert decide_exit(S.ONLINE, policy, started(), 1, T0 + 10).state is S.ERRORED
    assert decide_exit(S.ONLINE, policy, started(), 1, T0 + 1000).state is S.WAITING_RESTART


def test_max_restarts_0_allows_no_crash_restart():
    policy = RestartPolicy(max_restarts=0)
    first = decide_exit(S.ONLINE, policy, started(), 1, T0 + 10)
    assert first.state is S.ERRORED
    assert first.reason == "unstable restarts reached max_restarts (0)"
    # as in PM2, even a long-lived process is not restarted: the limit is already reached
    assert decide_exit(S.ONLINE, policy, started(), 1, T0 + 60_000).state is S.ERRORED
    # the exits that were never going to restart are unaffected
    assert decide_exit(S.STOPPING, policy, started(), 0, T0 + 10).state is S.STOPPED


@pytest.mark.parametrize("state", [S.STOPPED, S.ERRORED, S.WAITING_RESTART])
def test_exit_without_a_process_is_illegal(state):
    with pytest.raises(IllegalTransition):
        decide_exit(state, RestartPolicy(), started(), 1, T0 + 10)


# --- backoff ---------------------------------------------------------------------------

BACKOFF_100 = [100, 150, 225, 337, 505, 757, 1135, 1702, 2553, 3829, 5743, 8614, 12921, 15000]


def test_fixed_restart_delay():
    policy = RestartPolicy(restart_delay=250)
    d = decide_exit(S.ONLINE, policy, started(), 1, T0 + 5000)
    assert (d.delay_ms, d.reason, d.history.prev_restart_delay) == (250, "restart in 250 ms", 0)
    assert restart_delay(policy, d.history) == 250


def test_exp_backoff_sequence_up_to_the_cap():
    policy = RestartPolicy(exp_backoff_restart_delay=100, restart_delay=9999)
    history, now, delays = started(), T0, []
    for _ in range(len(BACKOFF_100) + 3):
        now += 5000  # stable runs: only the backoff grows
        d = decide_exit(S.ONLINE, policy, history, 1, now)
        assert d.event is E.CRASHED and d.history.prev_restart_delay == d.delay_ms
        delays.append(d.delay_ms)
        now += d.delay_ms
        history = on_spawn(d.history, now, is_restart=True)
    assert delays == [*BACKOFF_100, EXP_BACKOFF_MAX_MS, EXP_BACKOFF_MAX_MS, EXP_BACKOFF_MAX_MS]
    assert history.restart_time == len(delays)


def test_exp_backoff_above_the_cap_starts_at_e():
    policy = RestartPolicy(exp_backoff_restart_delay=20000)
    assert restart_delay(policy, RestartHistory()) == 20000
    assert restart_delay(policy, RestartHistory(prev_restart_delay=20000)) == EXP_BACKOFF_MAX_MS


def test_backoff_resets_after_30_s_of_uptime():
    history = RestartHistory(pm_uptime=T0, prev_restart_delay=1702)
    assert reset_backoff_if_stable(history, T0 + EXP_BACKOFF_RESET_MS) == history
    assert reset_backoff_if_stable(history, T0 + EXP_BACKOFF_RESET_MS + 1).prev_restart_delay == 0
    policy = RestartPolicy(exp_backoff_restart_delay=100)
    reset = reset_backoff_if_stable(history, T0 + 40_000)
    assert restart_delay(policy, reset) == 100


# --- history helpers -------------------------------------------------------------------


def test_on_start_and_manual_restart_reset_the_window():
    worn = RestartHistory(
        created_at=None, pm_uptime=T0, restart_time=7, unstable_restarts=3, prev_restart_delay=337
    )
    for reset in (on_start(worn, T0 + 1), on_manual_restart(worn, T0 + 1)):
        assert reset == RestartHistory(
            created_at=T0 + 1,
            pm_uptime=T0,
            restart_time=7,
            unstable_restarts=0,
            prev_restart_delay=0,
        )


def test_on_spawn():
    history = RestartHistory(restart_time=2)
    assert on_spawn(history, T0, is_restart=False) == RestartHistory(pm_uptime=T0, restart_time=2)
    assert on_spawn(history, T0, is_restart=True) == RestartHistory(pm_uptime=T0, restart_time=3)


# --- driven loops ----------------------------------------------------------------------


def run_crash_loop(policy, uptime_ms, max_exits=1000):
    """Start an app that always exits after ``uptime_ms``; return the decisions until it rests."""
    now = T0
    history = on_spawn(on_start(RestartHistory(), now), now, is_restart=False)
    state, decisions = next_state(next_state(S.STOPPED, E.SPAWN), E.READY), []
    while len(decisions) < max_exits:
        now += uptime_ms
        d = decide_exit(state, policy, history, 1, now)
        decisions.append(d)
        if d.state is not S.WAITING_RESTART:
            break
        now += d.delay_ms
        history = on_spawn(d.history, now, is_restart=True)
        state = next_state(next_state(d.state, E.SPAWN), E.READY)
    return decisions


@pytest.mark.parametrize("max_restarts", [1, 2, 5, 16])
@pytest.mark.parametrize("delay", [0, 30])
def test_crash_loop_errors_after_exactly_max_restarts(max_restarts, delay):
    policy = RestartPolicy(max_restarts=max_restarts, restart_delay=delay)
    decisions = run_crash_loop(policy, uptime_ms=50)
    assert len(decisions) == max_restarts
    assert [d.event for d in decisions[:-1]] == [E.CRASHED] * (max_restarts - 1)
    assert [d.history.unstable_restarts for d in decisions[:-1]] == list(range(1, max_restarts))
    last = decisions[-1]
    assert (last.event, last.state, last.history.created_at) == (E.OVERLIMIT, S.ERRORED, None)
    # and once errored, a new exit (after a spawn without a user start) is never counted again
    again = on_spawn(last.history, T0 + 100_000, is_restart=True)
    assert decide_exit(S.ONLINE, policy, again, 1, T0 + 100_010).event is E.CRASHED


def test_slow_crashing_app_never_errors():
    decisions = run_crash_loop(RestartPolicy(), uptime_ms=1500, max_exits=200)
    assert len(decisions) == 200
    assert all(d.event is E.CRASHED and d.history.unstable_restarts == 0 for d in decisions)


def test_backoff_outgrows_the_unstable_window():
    # delays push the crashes out of min_uptime * max_restarts (16 s) before 16 are counted
    decisions = run_crash_loop(RestartPolicy(exp_backoff_restart_delay=100), uptime_ms=50)
    assert len(decisions) == 1000 and decisions[-1].event is E.CRASHED
    assert max(d.history.unstable_restarts for d in decisions) < 16
