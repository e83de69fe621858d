"""Deterministic, compact text for entries, messages, Readies and status.

Theory of operation
-------------------
Scripted tests compare this text byte for byte, and humans read it in logs
and in the demo, so every function here is a pure function of its argument:
no ids, addresses or clocks. Entries render as ``term/index`` followed by
their kind and data (``2/5 EntryNormal "x=1"``), messages as
``src->dst Kind Term:t field=value ...``.
"""

from __future__ import annotations

from . import membership
from .messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotAck,
    SnapshotChunk,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .rawnode import Status
from .ready import Ready
from .types import Entry, EntryKind, HardState, SnapshotMeta


def entry(e: Entry) -> str:
    if e.kind is EntryKind.NOOP:
        return f"{e.term}/{e.index} NoOp"
    if e.kind is EntryKind.CONFIG:
        try:
            m = membership.decode(e.data)
        except membership.MembershipDecodeError:
            return f"{e.term}/{e.index} Config(invalid) {_data(e.data)}"
        context = membership.decode_context(e.data)
        tail = f" context={_data(context)}" if context else ""
        return f"{e.term}/{e.index} Config({m.describe()}){tail}"
    return f"{e.term}/{e.index} {_data(e.data)}"


def entries(es: tuple[Entry, ...] | list[Entry]) -> str:
    return "[" + ", ".join(entry(e) for e in es) + "]"


def _data(d: bytes) -> str:
    try:
        text = d.decode("ascii")
    except UnicodeDecodeError:
        return "0x" + d.hex()
    return (
        '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if text.isprintable()
        else ("0x" + d.hex())
    )


def message(m: Message) -> str:
    head = f"{m.src}->{m.dst} {type(m).__name__} Term:{m.term}"
    if isinstance(m, VoteRequest):
        pre = " pre" if m.pre else ""
        transfer = " transfer" if m.transfer else ""
        return f"{head}{pre}{transfer} last={m.last_term}/{m.last_index}"
    if isinstance(m, VoteResponse):
        pre = " pre" if m.pre else ""
        return f"{head}{pre} {'granted' if m.granted else 'rejected'}"
    if isinstance(m, AppendEntries):
        tail = f" {entries(m.entries)}" if m.entries else ""
        return f"{head} prev={m.prev_term}/{m.prev_index} commit={m.commit}{tail}"
    if isinstance(m, AppendResponse):
        if m.success:
            return f"{head} ok match={m.index}"
        if m.lost:
            return f"{head} lost its log after {m.index}"
        return f"{head} rejected prev={m.index} hint={m.conflict_term}/{m.conflict_index}"
    if isinstance(m, Heartbeat):
        return f"{head} commit={m.commit}" + (f" round={m.round}" if m.round else "")
    if isinstance(m, HeartbeatResponse):
        return head + (f" round={m.round}" if m.round else "")
    if isinstance(m, ReadIndexRequest):
        return f"{head} read={_data(m.ctx)}"
    if isinstance(m, ReadIndexResponse):
        return f"{head} read={_data(m.ctx)} index={m.index}"
    if isinstance(m, InstallSnapshot):
        return f"{head} {snapshot(m.meta)}"
    if isinstance(m, SnapshotChunk):
        end = m.offset + len(m.data)
        return f"{head} {snapshot(m.meta)} transfer={m.transfer} bytes={m.offset}..{end}/{m.total}"
    if isinstance(m, SnapshotAck):
        status = {0: "progress", 1: "installed", 2: "refused"}.get(m.status, str(m.status))
        return f"{head} transfer={m.transfer} received={m.received} {status}"
    if isinstance(m, TimeoutNow):
        return head
    assert isinstance(m, Propose)
    return f"{head} {', '.join(_data(d) for d in m.data)}"


def snapshot(meta: SnapshotMeta) -> str:
    text = f"Snapshot:{meta.term}/{meta.index} voters=" + ",".join(map(str, meta.voters))
    if meta.outgoing:
        text += " outgoing=" + ",".join(map(str, meta.outgoing))
    if meta.learners:
        text += " learners=" + ",".join(map(str, meta.learners))
    return text


def hard_state(hs: HardState) -> str:
    return f"Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}"


def ready(rd: Ready) -> list[str]:
    """Lines describing a Ready, in its execution order; empty parts omitted."""
    lines: list[str] = []
    if rd.soft_state is not None:
        lines.append(f"Role:{rd.soft_state.role.value} Leader:{rd.soft_state.leader}")
    if rd.snapshot is not None:
        lines.append("Install " + snapshot(rd.snapshot))
    if rd.hard_state is not None:
        lines.append("HardState " + hard_state(rd.hard_state))
    if rd.entries:
        lines.append("Entries:")
        lines.extend("  " + entry(e) for e in rd.entries)
    if rd.messages:
        lines.append("Messages:")
        lines.extend("  " + message(m) for m in rd.messages)
    if rd.messages_after_persist:
        lines.append("Messages after persist:")
        lines.extend("  " + message(m) for m in rd.messages_after_persist)
    if rd.committed_entries:
        lines.append("Committed:")
        lines.extend("  " + entry(e) for e in rd.committed_entries)
    if rd.read_states:
        lines.append("Reads:")
        lines.extend(
            f"  {_data(r.ctx)} " + (f"at {r.index}" if r.index else "refused")
            for r in rd.read_states
        )
    return lines


def status(st: Status) -> list[str]:
    lines = [
        f"{st.id}: {st.role.value} Term:{st.term} Vote:{st.vote} Leader:{st.leader} "
        f"Commit:{st.commit} Applied:{st.applied} Last:{st.last_index}"
        + (f" Transferring:{st.transferee}" if st.transferee else "")
    ]
    if st.membership_index:  # changed since the seed: say how it stands
        state = "committed" if st.membership_committed else "pending"
        removed = " (removed)" if st.removed else ""
        lines.append(
            f"  members {st.membership.describe()} at {st.membership_index} {state}{removed}"
        )
    for p, f in sorted(st.followers.items()):
        lines.append(f"  {p}: {f.state} match={f.match} next={f.next} inflight={f.inflight}")
    return lines
