#!/usr/bin/env python3
"""Markdown tables for benchmarks/RESULTS.md from the JSON that run.sh leaves (one file per
emulated cluster run): time of the whole aggregation (median over iterations of the slowest
rank, with the min..max over iterations), speed-up over dense-flat (MPI_Allreduce) in the same
run, inter-node bytes from the interfaces' counters next to the algorithms' own count, their
share of dense-hier's, and auto against the fastest algorithm of each cell.

    summarize.py results/matrix-1gbit.json results/matrix-10gbit.json
"""
import json
import sys


def mib(b):
    return f"{b / 2**20:.2f}"


def main(paths):
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        rows = doc["rows"]
        print(f"\n`{path}`: {doc['topology']}, hosts {doc['hosts']}, commit {doc['commit']}, "
              f"link for auto {doc['link']['inter_Gbps']:.3g} Gbit/s ({doc['link']['source']}), "
              f"load {doc.get('load_average_start', '?')} -> {doc.get('load_average_end', '?')}\n")
        print("| n | density | algorithm | median ms [min, max] | x dense-flat | link MiB/iter "
              "(counters) | algorithm's inter MiB | % of dense-hier link | ratio | rank 0: "
              "select+encode / intra / inter / merge ms | check |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|")
        hier = {r["count"]: r for r in rows if r["algorithm"] == "dense-hier"}
        for r in rows:
            t = r["time_ms"]
            lo, hi = t["max_rank_spread"]
            link = r.get("link_bytes_all_nodes", {}).get("tx", -1)
            h = hier.get(r["count"])
            hl = h.get("link_bytes_all_nodes", {}).get("tx", -1) if h else -1
            share = f"{100 * link / hl:.2f}" if link >= 0 and hl > 0 else "-"
            name = r["algorithm"] if r["algorithm"] == r["chosen"] else \
                f"{r['algorithm']} ({r['chosen']})"
            p = r["phase_ms_rank0"]
            n = r["count"]
            exp = n.bit_length() - 1
            nstr = f"2^{exp}" if n == 1 << exp else str(n)
            dens = "-" if r["density"] >= 1 else f"{100 * r['density']:g}%"
            print(f"| {nstr} | {dens} | {name} | {t['max_rank']:.1f} [{lo:.1f}, {hi:.1f}] | "
                  f"{r['speedup_vs_dense_flat']:.2f} | {mib(link) if link >= 0 else '-'} | "
                  f"{mib(r['inter_sent_all_ranks'])} | {share} | {r['compression_ratio']:.1f} | "
                  f"{p['select_encode']:.1f} / {p['intra']:.1f} / {p['inter']:.1f} / "
                  f"{p['decode_merge']:.1f} | {r['check']} |")
        cells = doc.get("auto_vs_fastest", [])
        if cells:
            worst = max(c["auto_over_fastest"] for c in cells)
            print(f"\nauto / fastest per cell: " + ", ".join(
                f"2^{c['count'].bit_length() - 1} {100 * c['density']:g}%: "
                f"{c['auto_over_fastest']:.3f} ({c['auto_chose']} vs {c['fastest']})"
                for c in cells) + f"; worst {worst:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
