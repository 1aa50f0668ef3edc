"""Timeline lanes folded from replay steps: per worker, its state segments over time,
heartbeat marks, message marks and conflicts. Pure: steps in, plain data out (the CLI
draws it as text or as an HTML page)."""


def compute(steps, end_ts: str | None = None) -> dict:
    lanes: dict[str, dict] = {}
    holders: dict[str, list[str]] = {}  # agent -> workers it holds now (messages to agents)
    loose = []  # messages that reach no worker lane
    first = last = None
    for s in steps:
        env = s.env
        first = env.ts if first is None else first
        last = env.ts
        if s.worker is not None:
            if s.after is None:
                continue  # an event for a worker that never existed: `verify` reports it
            lane = lanes.get(s.worker)
            if lane is None:
                lane = lanes[s.worker] = {
                    "worker": s.worker,
                    "task": s.after.task,
                    "segments": [],
                    "beats": [],
                    "msgs": [],
                    "conflicts": [],
                    "after": [],  # the workers it waits for, as of the last step
                    "deps": [],  # dependency and priority changes, as marks
                }
            if s.conflict is not None:
                lane["conflicts"].append(
                    {"ts": env.ts, "from": env.from_, "type": env.type, "reason": s.conflict, "id": s.id}
                )
                continue
            lane["after"] = list(s.after.after)
            if env.type == "worker.heartbeat":
                lane["beats"].append({"ts": env.ts, "from": env.from_, "note": env.payload.get("note")})
                continue
            if env.type in ("worker.dep_added", "worker.dep_removed", "worker.prioritized"):
                lane["deps"].append(
                    {"ts": env.ts, "from": env.from_, "type": env.type, "payload": env.payload}
                )
                continue
            segs = lane["segments"]
            if segs:
                segs[-1]["end"] = env.ts
            segs.append(
                {
                    "state": s.after.state,
                    "start": env.ts,
                    "end": None,
                    "holder": s.after.holder,
                    "by": env.from_,
                    "type": env.type,
                    "id": s.id,
                }
            )
            before_holder = s.before.holder if s.before is not None else None
            if before_holder and before_holder != s.after.holder:
                held = holders.get(before_holder, [])
                if s.worker in held:
                    held.remove(s.worker)
            if s.after.holder and s.after.holder != before_holder:
                holders.setdefault(s.after.holder, []).append(s.worker)
        elif env.type in ("check.passed", "check.failed"):
            if env.to in lanes:
                lanes[env.to].setdefault("checks", []).append(
                    {
                        "ts": env.ts,
                        "from": env.from_,
                        "name": env.payload.get("name"),
                        "passed": env.type == "check.passed",
                        "commit": env.payload.get("commit"),
                        "id": s.id,
                    }
                )
        elif env.type.startswith("msg."):
            mark = {"ts": env.ts, "from": env.from_, "to": env.to, "type": env.type, "id": s.id}
            if env.to in lanes:
                lanes[env.to]["msgs"].append(mark)
            elif holders.get(env.to):
                for w in holders[env.to]:
                    lanes[w]["msgs"].append(mark)
            else:
                loose.append(mark)
    return {"start": first, "end": end_ts or last, "lanes": list(lanes.values()), "messages": loose}


def clip(lane: dict, start: str) -> dict:
    """A lane cut to begin at `start`: segments ending before it dropped, one spanning it
    trimmed; marks before it dropped."""
    segs = []
    for s in lane["segments"]:
        if s["end"] is not None and s["end"] <= start:
            continue
        if s["start"] < start:
            s = dict(s, start=start)
        segs.append(s)
    return dict(
        lane,
        segments=segs,
        beats=[b for b in lane["beats"] if b["ts"] >= start],
        msgs=[m for m in lane["msgs"] if m["ts"] >= start],
        conflicts=[c for c in lane["conflicts"] if c["ts"] >= start],
    )
