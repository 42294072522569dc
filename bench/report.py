"""Renders the benchmark's raw figures (results.json) as a markdown table
of medians and ratios. `python3 bench/report.py results.json` prints the
table again from a saved run."""

import json
import statistics
import sys

GIB = 1 << 30
CLIENT_BOUND_SHARE = 0.9

TARGETS = ("nginx", "mitmproxy", "btrfly")


def runs_of(doc, target, workload):
    return [r for r in doc["runs"] if r["target"] == target and r["workload"] == workload]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# Each figure: (name, function of one run, format, higher-is-better).
def throughput(r):
    return r["throughput_mb_s"]


def rps(r):
    return r["requests_per_s"]


def p50_ms(r):
    return r["latency"]["p50_us"] / 1000


def p99_ms(r):
    return r["latency"]["p99_us"] / 1000


def cpu_per_gib(r):
    return r["server_cpu_s"] / (r["bytes"] / GIB) if r["bytes"] else None


def cpu_per_1000(r):
    return r["server_cpu_s"] / r["requests"] * 1000 if r["requests"] else None


def fmt_num(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(a, b):
    if a is None or b in (None, 0):
        return "—"
    x = a / b
    return f"{x:.2f}×" if x >= 0.1 else f"{x:.2g}×"


def cell(doc, target, workload, fn):
    runs = runs_of(doc, target, workload)
    if not runs:
        return None, "—"
    v = median(fn(r) for r in runs)
    text = fmt_num(v)
    if any(r["client_cpu_share"] > CLIENT_BOUND_SHARE for r in runs):
        text += " †"
    return v, text


def rss_cell(doc, target, workload):
    runs = runs_of(doc, target, workload)
    if not runs:
        return None, "—"
    peaks = [r["server_peak_rss_kb"] / 1024 for r in runs]
    text = " → ".join(f"{p:.0f}" for p in peaks) if len(set(round(p) for p in peaks)) > 1 else f"{peaks[-1]:.0f}"
    return max(peaks), text


def paired_ratio(doc, a, b, fn, rss=False):
    """Median over repetitions of fn(a's run) / fn(b's run) of the same
    repetition (the two ran minutes apart at most); `a` and `b` are
    (target, workload). For peak RSS: the largest of each."""
    ra, rb = runs_of(doc, *a), runs_of(doc, *b)
    if not ra or not rb:
        return "—"
    if rss:
        return fmt_ratio(max(r["server_peak_rss_kb"] for r in ra), max(r["server_peak_rss_kb"] for r in rb))
    by_rep = {r["rep"]: r for r in rb}
    ratios = []
    for r in ra:
        other = by_rep.get(r["rep"])
        if other is None:
            continue
        x, y = fn(r), fn(other)
        if x is not None and y:
            ratios.append(x / y)
    return fmt_ratio(median(ratios), 1) if ratios else "—"


def row(doc, label, figure, cols, fn=None, rss=False):
    """cols: three (target, workload) pairs: baseline, mitmproxy, btrfly."""
    cells = [rss_cell(doc, t, w) if rss else cell(doc, t, w, fn) for t, w in cols]
    (_, base_t), (_, mitm_t), (_, bt_t) = cells
    base, mitm, bt = cols
    return (f"| {label} | {figure} | {base_t} | {mitm_t} | {bt_t} | "
            f"{paired_ratio(doc, bt, base, fn, rss)} | {paired_ratio(doc, bt, mitm, fn, rss)} |")


def rows_record_small(doc, label, rec):
    """The opt-in recording of the whole small-file list (BENCH_RECORD_REPEATS=1)."""
    cols = rec("direct-small", "record-small")
    return [
        row(doc, label, "requests/s", cols, rps),
        row(doc, label, "p50 latency ms", cols, p50_ms),
        row(doc, label, "p99 latency ms", cols, p99_ms),
        row(doc, label, "server CPU s per 1,000 requests", cols, cpu_per_1000),
        row(doc, label, "server peak RSS MiB (per run)", cols, rss=True),
    ]


def render(doc):
    s = doc["settings"]
    m = doc["machine"]
    reps = s["reps"]
    large = f"{s['large'] / GIB:g} GiB" if s["large"] >= GIB else f"{s['large'] >> 20} MiB"
    small = f"{s['requests']:,} × {s['small'] >> 10} KiB ({s['distinct']:,} files), {s['connections']} conns"
    out = []
    out.append(f"## btrfly benchmark — size `{doc['size']}`, median of {reps}")
    out.append("")
    out.append(f"{m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}; {m['date']}; "
               f"servers on core {doc['server_core']}, load client on core {doc['client_core']}.  ")
    out.append(f"{m['btrfly']} ({m['git']}), {m['nginx']}, mitmproxy {m['mitmproxy'].split(':')[-1].strip()}, {m['rustc']}.")
    out.append("")
    out.append("### Playback against nginx and mitmproxy's server replay")
    out.append("")
    out.append("| workload | figure | nginx direct over TLS | mitmproxy replay | btrfly playback | btrfly/nginx | btrfly/mitmproxy |")
    out.append("|---|---|---|---|---|---|---|")

    def three(w):
        return [("nginx", w), ("mitmproxy", w), ("btrfly", w)]

    out.append(row(doc, f"{large} file", "throughput MB/s", three("large"), throughput))
    out.append(row(doc, f"{large} file", "server CPU s per GiB", three("large"), cpu_per_gib))
    out.append(row(doc, f"{large} file", "server peak RSS MiB", three("large"), rss=True))
    for http in ("1.1", "2"):
        label = f"{small}, HTTP/{http}"
        w = f"small-h{http}"
        out.append(row(doc, label, "requests/s", three(w), rps))
        out.append(row(doc, label, "p50 latency ms", three(w), p50_ms))
        out.append(row(doc, label, "p99 latency ms", three(w), p99_ms))
        out.append(row(doc, label, "server CPU s per 1,000 requests", three(w), cpu_per_1000))
        out.append(row(doc, label, "server peak RSS MiB (per run)", three(w), rss=True))
    cold = f"new host, {s['cold_hosts']} names: CONNECT + TLS + minting + GET"
    out.append(row(doc, cold, "p50 latency ms", three("cold"), p50_ms))
    out.append(row(doc, cold, "p99 latency ms", three("cold"), p99_ms))
    warm = "new connection, certificate cached: CONNECT + TLS + GET"
    out.append(row(doc, warm, "p50 latency ms", three("warm-conn"), p50_ms))
    out.append("")
    out.append("### Recording against a direct download from nginx")
    out.append("")
    out.append("| workload | figure | direct from nginx | mitmproxy recording | btrfly recording | btrfly/direct | btrfly/mitmproxy |")
    out.append("|---|---|---|---|---|---|---|")

    def rec(w_direct, w):
        return [("nginx", w_direct), ("mitmproxy", w), ("btrfly", w)]

    out.append(row(doc, f"{large} file", "throughput MB/s", rec("direct-large", "record-large"), throughput))
    out.append(row(doc, f"{large} file", "server CPU s per GiB", rec("direct-large", "record-large"), cpu_per_gib))
    out.append(row(doc, f"{large} file", "server peak RSS MiB", rec("direct-large", "record-large"), rss=True))
    many = f"{small}, HTTP/1.1"
    if runs_of(doc, "btrfly", "record-small") or runs_of(doc, "mitmproxy", "record-small"):
        out += rows_record_small(doc, many, rec)
    distinct = f"{s['distinct']:,} × {s['small'] >> 10} KiB, once each, {s['connections']} conns, HTTP/1.1"
    out.append(row(doc, distinct, "requests/s", rec("direct-distinct", "record-distinct"), rps))
    out.append(row(doc, distinct, "p50 latency ms", rec("direct-distinct", "record-distinct"), p50_ms))
    out.append(row(doc, distinct, "p99 latency ms", rec("direct-distinct", "record-distinct"), p99_ms))
    out.append(row(doc, distinct, "server CPU s per 1,000 requests", rec("direct-distinct", "record-distinct"), cpu_per_1000))
    out.append(row(doc, distinct, "server peak RSS MiB (per run)", rec("direct-distinct", "record-distinct"), rss=True))
    out.append("")
    out.append("### Where the wall time went (medians, % of each run's wall time)")
    out.append("")
    out.append("Busy: CPU time used; waiting: ready to run but a CPU was taken (run-queue delay from "
               "schedstat, summed over live threads). A server with several threads on its one core "
               "(btrfly) also counts its threads waiting for each other, so this can pass 100 %. "
               "A process neither busy nor waiting was idle: the pace was set elsewhere (the other side, "
               "the upstream, a lock, the disk).")
    out.append("")
    out.append("| target | workload | server busy | server waiting | client busy | client waiting |")
    out.append("|---|---|---|---|---|---|")
    seen = []
    for r in doc["runs"]:
        key = (r["target"], r["workload"])
        if key not in seen:
            seen.append(key)
    for target, workload in sorted(seen, key=lambda k: (TARGETS.index(k[0]), k[1])):
        runs = runs_of(doc, target, workload)

        def pct(fn):
            v = median(fn(r) / r["wall_s"] * 100 for r in runs if r["wall_s"] > 0)
            return "—" if v is None else f"{v:.0f} %"

        out.append(f"| {target} | {workload} | {pct(lambda r: r['server_cpu_s'])} | "
                   f"{pct(lambda r: r.get('server_runqueue_wait_s', 0))} | "
                   f"{pct(lambda r: r['client_cpu_s'])} | {pct(lambda r: r.get('client_runqueue_wait_s', 0))} |")
    out.append("")
    shares = [r["client_cpu_share"] for r in doc["runs"]]
    loads = [x for r in doc["runs"] for x in (r["loadavg_before"], r["loadavg_after"])]
    notes = []
    if shares:
        worst = max(doc["runs"], key=lambda r: r["client_cpu_share"])
        notes.append(f"load client CPU share: at most {max(shares):.2f} of its core ({worst['label']})"
                     f"{'; † marks cells where it exceeded ' + str(CLIENT_BOUND_SHARE) if max(shares) > CLIENT_BOUND_SHARE else ''}")
    if loads:
        notes.append(f"1-minute load average during the runs: {min(loads):.1f}–{max(loads):.1f} (2 cores; other sessions share them)")
    notes.append(f"wall time {doc['total_seconds']:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in doc['phase_seconds'].items())})")
    out += [f"- {n}" for n in notes]
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 bench/report.py RESULTS.json")
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
