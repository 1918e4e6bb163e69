"""The bounded trace assembler (routerwatch.otlp.assemble), driven by a fake clock."""

from __future__ import annotations

import json
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from routerwatch.otlp.assemble import Assembled, DeadTrace, Ignored, TraceAssembler
from routerwatch.otlp.mapping import build_decision, event_id
from routerwatch.otlp.spans import Span

T0 = 1_767_000_000_000_000_000


def trace_spans(trace: int, attempts: int = 2, router: bool = True) -> list[Span]:
    tid = f"{trace:032x}"
    out = []
    if router:
        out.append(Span(tid, f"{1:016x}", "", "route", T0, T0 + 10_000_000 * (attempts + 1),
                        {"routerwatch.router.id": "r"}, {"service.name": "s"}))
    for i in range(attempts):
        out.append(Span(tid, f"{i + 2:016x}", f"{1:016x}" if router else "", "chat",
                        T0 + i * 10_000_000, T0 + (i + 1) * 10_000_000 - 1,
                        {"gen_ai.operation.name": "chat", "gen_ai.request.model": f"m{i}", "routerwatch.tier": f"t{i}",
                         "routerwatch.tier_rank": i}, {"service.name": "s"}))
    return out


def assembler(**limits) -> TraceAssembler:
    return TraceAssembler(partial(build_decision, prices=None), **{"grace_s": 1.0, "window_s": 10.0, **limits})


def test_children_first_then_root_then_grace():
    spans = trace_spans(1)
    a = assembler()
    assert a.add(spans[1:], now=0).accepted == 2
    assert a.due(5) == []  # no root yet, window not over
    a.add(spans[:1], now=5)
    assert a.due(5.5) == []  # the grace after the root
    [closed] = a.due(6.0)
    assert isinstance(closed, Assembled) and closed.trigger == "root" and closed.spans == 3
    assert closed.event_id == event_id(f"{1:032x}")
    d = json.loads(closed.value)
    assert [x["outcome"] for x in d["attempts"]] == ["escalated", "accepted"]
    assert a.open_traces == 0


def test_a_trace_without_its_root_is_assembled_when_the_window_ends():
    a = assembler()
    spans = trace_spans(2, router=False)  # the attempts are roots here: the trace is due after the grace
    a.add(spans, now=0)
    assert [c.trigger for c in a.due(1.0)] == ["root"]
    a = assembler()
    orphan = [Span(s.trace_id, s.span_id, "ffffffffffffffff", s.name, s.start_ns, s.end_ns, s.attributes, s.resource)
              for s in trace_spans(3, router=False)]  # their parent lives in a service that does not send here
    a.add(orphan, now=0)
    assert a.due(9.9) == []
    [closed] = a.due(10.0)
    assert isinstance(closed, Assembled) and closed.trigger == "timeout"


def test_late_spans_are_dead_lettered_and_repeated_ones_are_duplicates():
    a = assembler()
    spans = trace_spans(4, attempts=3)
    a.add([spans[0], spans[1]], now=0)
    [closed] = a.due(1.0)
    assert isinstance(closed, Assembled)
    again = a.add(spans, now=2)  # the exporter sends everything again, with one span the trace missed
    assert (again.accepted, again.duplicates, again.rejected) == (0, 2, 2)
    [late] = again.dead
    assert late.reason == "otlp_late_span" and late.trace_id == f"{4:032x}" and len(late.spans) == 2
    third = a.add(spans, now=3)
    assert (third.duplicates, third.rejected) == (4, 0)  # late spans are remembered too: never dead-lettered twice


def test_capacity_dead_letters_new_traces_and_their_later_spans():
    a = assembler(max_open_traces=2)
    a.add(trace_spans(1)[1:] + trace_spans(2)[1:], now=0)
    full = a.add(trace_spans(3), now=0)
    assert full.accepted == 0 and [d.reason for d in full.dead] == ["otlp_capacity"] and full.rejected == 3
    a.add(trace_spans(1)[:1], now=1)
    assert len(a.due(2.0)) == 1
    later = a.add(trace_spans(3) + [Span(f"{3:032x}", f"{99:016x}", "", "x", T0, T0 + 1, {}, {})], now=3)
    assert [d.reason for d in later.dead] == ["otlp_capacity"] and later.rejected == 1 and later.duplicates == 3


def test_a_trace_with_too_many_spans_is_dead_lettered_whole():
    a = assembler(max_spans_per_trace=3)
    spans = trace_spans(5, attempts=4)
    first = a.add(spans[:3], now=0)
    assert first.accepted == 3 and not first.dead
    over = a.add(spans[3:], now=0)
    [dead] = over.dead
    assert dead.reason == "otlp_trace_too_large" and len(dead.spans) == 5 and a.open_traces == 0
    assert (over.accepted, over.rejected) == (0, 2)
    assert a.add(spans[4:], now=1).duplicates == 1  # already in the dead letter
    later = a.add([Span(f"{5:032x}", f"{77:016x}", "", "x", T0, T0 + 1, {}, {})], now=1)
    assert later.rejected == 1 and later.dead[0].reason == "otlp_trace_too_large"  # new ones go the same way


def test_broken_and_unrelated_traces():
    a = assembler()
    a.add([Span(f"{6:032x}", f"{1:016x}", "", "route", T0, T0 + 5, {"routerwatch.router.id": "r"}, {})], now=0)
    a.add([Span(f"{7:032x}", f"{1:016x}", "", "GET /health", T0, T0 + 5, {"http.route": "/health"}, {})], now=0)
    closed = {c.trace_id: c for c in a.due(1.0)}
    assert isinstance(closed[f"{6:032x}"], DeadTrace) and closed[f"{6:032x}"].reason == "otlp_no_attempts"
    assert isinstance(closed[f"{7:032x}"], Ignored)


def test_flush_closes_everything_and_memory_of_closed_traces_is_bounded():
    a = assembler(remember_traces=3)
    for t in range(1, 6):
        a.add(trace_spans(t), now=0)
    closed = a.flush()
    assert len(closed) == 5 and {c.trigger for c in closed} == {"shutdown"} and a.open_traces == 0
    assert a.next_due() is None
    assert len(a._closed) == 3
    # A forgotten trace sent again is assembled again, with the same event_id (ingest stores it once).
    a.add(trace_spans(1), now=1)
    [again] = a.due(2.0)
    assert again.event_id == event_id(f"{1:032x}")


@st.composite
def deliveries(draw):
    """Several traces' spans, shuffled, some repeated, cut into requests arriving at increasing times."""
    traces = draw(st.lists(st.integers(1, 3), min_size=1, max_size=6))
    spans = [s for i, n in enumerate(traces) for s in trace_spans(i + 1, attempts=n)]
    spans += draw(st.lists(st.sampled_from(spans), max_size=8))  # redeliveries
    order = draw(st.permutations(spans))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=6)))
    batches, last = [], 0
    for cut in cuts + [len(order)]:
        batches.append(order[last:cut])
        last = cut
    gaps = draw(st.lists(st.floats(0, 0.1), min_size=len(batches), max_size=len(batches)))  # all within the grace
    return len(traces), spans, batches, gaps


@settings(max_examples=150, deadline=None)
@given(deliveries())
def test_any_order_and_redelivery_within_the_grace_gives_one_identical_decision_per_trace(case):
    n_traces, spans, batches, gaps = case
    a = assembler(grace_s=1.0, window_s=10.0)
    now, out, accepted, duplicates, rejected = 0.0, [], 0, 0, 0
    for batch, gap in zip(batches, gaps):
        now += gap
        result = a.add(list(batch), now)
        accepted, duplicates, rejected = accepted + result.accepted, duplicates + result.duplicates, rejected + result.rejected
        out += a.due(now)
    out += a.due(now + 100)
    assert accepted + duplicates + rejected == len(spans)  # every span accounted for
    assert accepted == len({(s.trace_id, s.span_id) for s in spans})
    # Exactly one closed trace per trace; the decision is the same as from all spans at once.
    assert sorted(c.trace_id for c in out) == sorted({s.trace_id for s in spans})
    whole = {}
    for s in spans:
        whole.setdefault(s.trace_id, {})[s.span_id] = s
    for closed in out:
        assert isinstance(closed, Assembled)
        assert closed.value == build_decision(closed.trace_id, list(whole[closed.trace_id].values()))[1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.floats(0, 3)), min_size=1, max_size=60),
       st.integers(1, 5), st.integers(2, 6))
def test_memory_stays_bounded_and_nothing_is_lost(arrivals, max_open, max_spans):
    a = assembler(max_open_traces=max_open, max_spans_per_trace=max_spans, grace_s=0.5, window_s=2.0)
    now, sent, accepted, duplicates, rejected, leaving = 0.0, 0, 0, 0, 0, 0

    def out(closed) -> int:
        return sum(c.spans if isinstance(c, (Assembled, Ignored)) else len(c.spans) for c in closed)

    for trace, gap in arrivals:
        now += gap
        spans = trace_spans(trace, attempts=3)
        sent += len(spans)
        result = a.add(spans, now)
        accepted, duplicates, rejected = accepted + result.accepted, duplicates + result.duplicates, rejected + result.rejected
        leaving += out(result.dead)
        assert a.open_traces <= max_open
        assert all(len(t.spans) <= max_spans for t in a._open.values())
        leaving += out(a.due(now))
    leaving += out(a.flush())
    assert accepted + duplicates + rejected == sent
    # Every span taken in leaves exactly once: in a decision, an ignored trace or a dead letter.
    assert leaving == accepted + rejected
