#!/usr/bin/env python3
"""Flower's SecAgg+ cost per round for one client, beside fedsilo's secure aggregation.

What it measures, for one client of a federation of `peers + 1` clients where every other
client is a neighbour (SecAgg+ with num_shares = peers + 1, i.e. plain SecAgg's full graph):

  (a) quantization: the weight factor, clipping, stochastic rounding (flwr's `quantize`);
  (b) masks: the private self-mask and one pairwise mask per neighbour, each drawn with flwr's
      `pseudo_rand_gen` (a numpy RandomState = MT19937) and added as `secaggplus_mod` does;
  (c) key agreement and secret sharing: the two key pairs of the setup stage, the Shamir shares
      of the self-mask seed and of the first secret key, their encryption to each neighbour
      (ECDH + HKDF + Fernet), and the decryption of the neighbours' shares;
  (d) the bytes the client sends and receives per round, as flwr's own protobuf serialisation
      (`message_to_proto(...).ByteSize()`) of the messages of the four stages counts them;
  (e) the pseudo-random bytes the masks consume (MT19937 words drawn x 4 bytes), with the
      words per value checked against the generator's state.

Every step runs Flower's code: the four stages go through `secaggplus_mod` itself, with the
server's messages built as `SecAggPlusWorkflow` builds them; the breakdown of the masked-vector
stage calls the same flwr functions in the same order. Before timing, a small round with every
client going through `secaggplus_mod`, unmasked as the workflow unmasks, checks that the
weighted mean comes back (so the driving is right).

The fedsilo side is analytic for bytes (ring allreduce of n + 1 uint32 words) and read from
`secagg_bench` JSON files for compute. Needs `pip install flwr` (a throwaway venv; flwr is not a
fedsilo dependency). One core's work: numpy here runs single-threaded element-wise loops. Times
are process CPU seconds by default (--clock wall for elapsed seconds).

    python benchmarks/secagg/flower_secaggplus.py --n 16777216 --peers 7 \
        --fedsilo-json fresh=/tmp/fs_secagg.json --json benchmarks/secagg/results/flower_secaggplus.json
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import flwr
from flwr.app import ConfigRecord, Context, Message, Metadata, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod.secure_aggregation.secaggplus_mod import secaggplus_mod
from flwr.common import (
    DEFAULT_TTL,
    Code,
    FitIns,
    FitRes,
    Status,
    bytes_to_ndarray,
    ndarray_to_bytes,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    decrypt,
    encrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    factor_combine,
    factor_extract,
    get_parameters_shape,
    parameters_addition,
    parameters_mod,
    parameters_multiply,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.common.secure_aggregation.secaggplus_utils import (
    pseudo_rand_gen,
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)
from flwr.common.serde import message_to_proto
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)

# SecAggPlusWorkflow's defaults (flwr/server/workflow/secure_aggregation/secaggplus_workflow.py).
CLIPPING_RANGE = 8.0
QUANTIZATION_RANGE = 1 << 22
MODULUS_RANGE = 1 << 32
MAX_WEIGHT = 1000.0
# reconstruction_threshold has no default; Flower's example (examples/flower-secure-aggregation)
# uses 2 of 3 shares. The same ratio for 8 shares: round(2/3 * 8) = 5, as the workflow rounds.
THRESHOLD_RATIO = 2.0 / 3.0
FIRST_NODE_ID = 101  # node 1 is the SuperLink's id in flwr

# The timer: process CPU seconds (user + sys, all threads) by default. For this single-threaded
# work they equal wall seconds on an idle core, and they hold up better than wall seconds when
# other jobs share the machine; --clock wall switches to time.perf_counter.
_CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = _CLOCKS["cpu"]


def clock() -> float:
    return _clock()

# --------------------------------------------------------------------------- the simulated server


def server_message(dst: int, content: RecordDict, seq: int) -> Message:
    """A TRAIN instruction as the SuperLink delivers it to node `dst` (explicit metadata)."""
    meta = Metadata(
        run_id=1,
        message_id=f"m{seq}",
        src_node_id=1,
        dst_node_id=dst,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=DEFAULT_TTL,
        message_type=MessageType.TRAIN,
    )
    return Message(metadata=meta, content=content)


class Client:
    """One Flower client: its context (SecAgg+ state between stages) and its update."""

    def __init__(self, nid: int, update: np.ndarray, num_examples: int):
        self.nid = nid
        self.ctx = Context(run_id=1, node_id=nid, node_config={}, state=RecordDict(), run_config={})
        # The ClientApp's FitRes, serialised once outside the timings: without SecAgg+ the
        # client serialises its update too.
        self.fitres = FitRes(
            status=Status(Code.OK, ""),
            parameters=ndarrays_to_parameters([update]),
            num_examples=num_examples,
            metrics={},
        )

    def handle(self, msg: Message) -> Message:
        def train(m: Message, _ctx: Context) -> Message:
            return Message(compat.fitres_to_recorddict(self.fitres, keep_input=True), reply_to=m)

        return secaggplus_mod(msg, self.ctx, train)


def setup_config(num_samples: int, num_shares: int, threshold: int) -> dict:
    return {
        Key.STAGE: Stage.SETUP,
        Key.SAMPLE_NUMBER: num_samples,
        Key.SHARE_NUMBER: num_shares,
        Key.THRESHOLD: threshold,
        Key.CLIPPING_RANGE: CLIPPING_RANGE,
        Key.TARGET_RANGE: QUANTIZATION_RANGE,
        Key.MOD_RANGE: MODULUS_RANGE,
        Key.MAX_WEIGHT: MAX_WEIGHT,
    }


def wire_bytes(msg: Message) -> int:
    """Bytes of the message as flwr serialises it (protobuf Message: metadata + content)."""
    return message_to_proto(msg).ByteSize()


def run_round(clients, global_model, threshold, measured=None):
    """One SecAgg+ round through `secaggplus_mod`, routed as SecAggPlusWorkflow routes it.

    Every client runs the cheap stages (setup, share keys); the masked-vector and unmask stages
    run for `measured` only (its neighbours' masked vectors do not change its cost), or for all
    clients when `measured` is None. Returns per-stage seconds and bytes of the measured client
    (the first client when `measured` is None) and the replies of the last two stages.
    """
    nids = [c.nid for c in clients]
    by_id = {c.nid: c for c in clients}
    me = measured if measured is not None else nids[0]
    seq = iter(range(1 << 30))
    stats = {"seconds": {}, "sent": {}, "received": {}, "payload_sent": {}}

    def deliver(stage, nid, content):
        msg = server_message(nid, content, next(seq))
        t0 = clock()
        reply = by_id[nid].handle(msg)
        dt = clock() - t0
        if nid == me:
            stats["seconds"][stage] = dt
            stats["received"][stage] = wire_bytes(msg)
            stats["sent"][stage] = wire_bytes(reply)
        return reply.content.config_records[RECORD_KEY_CONFIGS]

    # Stage 0, setup: each client makes two key pairs and returns both public keys.
    cfg = setup_config(len(nids), len(nids), threshold)
    keys = {}
    for nid in nids:
        res = deliver(Stage.SETUP, nid, RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(dict(cfg))}))
        keys[nid] = [res[Key.PUBLIC_KEY_1], res[Key.PUBLIC_KEY_2]]
    stats["payload_sent"]["public_keys"] = sum(len(k) for k in keys[me])

    # Stage 1, share keys: each client gets its neighbours' public keys (all clients here) and
    # returns one ciphertext per neighbour (its shares of rd_seed and sk1).
    fwd = {nid: ([], []) for nid in nids}  # destination -> (sources, ciphertexts)
    for nid in nids:
        rec = ConfigRecord({str(j): keys[j] for j in nids})
        rec[Key.STAGE] = Stage.SHARE_KEYS
        res = deliver(Stage.SHARE_KEYS, nid, RecordDict({RECORD_KEY_CONFIGS: rec}))
        for dst, ct in zip(res[Key.DESTINATION_LIST], res[Key.CIPHERTEXT_LIST]):
            fwd[dst][0].append(nid)
            fwd[dst][1].append(ct)
            if nid == me:
                stats["payload_sent"]["encrypted_shares"] = (
                    stats["payload_sent"].get("encrypted_shares", 0) + len(ct))

    # Stage 2, collect masked vectors: the fit instruction (the global model) plus the
    # ciphertexts addressed to the client; it returns its masked vector.
    active = nids if measured is None else [me]
    fitins = FitIns(ndarrays_to_parameters([global_model]), {})
    masked = {}
    for nid in active:
        content = compat.fitins_to_recorddict(fitins, keep_input=True)
        content.config_records[RECORD_KEY_CONFIGS] = ConfigRecord(
            {Key.STAGE: Stage.COLLECT_MASKED_VECTORS,
             Key.CIPHERTEXT_LIST: fwd[nid][1], Key.SOURCE_LIST: fwd[nid][0]})
        res = deliver(Stage.COLLECT_MASKED_VECTORS, nid, content)
        masked[nid] = res[Key.MASKED_PARAMETERS]
    stats["payload_sent"]["masked_vector"] = sum(len(b) for b in masked[me])

    # Stage 3, unmask: with no dropout every neighbour is active, and the client returns its
    # share of each neighbour's rd_seed (a dead neighbour would get its sk1 share instead).
    shares = {}
    for nid in active:
        rec = ConfigRecord({Key.STAGE: Stage.UNMASK, Key.ACTIVE_NODE_ID_LIST: list(nids),
                            Key.DEAD_NODE_ID_LIST: []})
        res = deliver(Stage.UNMASK, nid, RecordDict({RECORD_KEY_CONFIGS: rec}))
        shares[nid] = (res[Key.NODE_ID_LIST], res[Key.SHARE_LIST])
    stats["payload_sent"]["unmask_shares"] = sum(len(s) for s in shares[me][1])
    return stats, masked, shares, keys


def unmask_sum(masked, shares, num_active):
    """The server's unmasking, as SecAggPlusWorkflow.unmask_stage does it with no dropout."""
    total = None
    for vec in masked.values():
        arrs = [bytes_to_ndarray(b) for b in vec]
        total = arrs if total is None else parameters_addition(total, arrs)
    total = parameters_mod(total, MODULUS_RANGE)
    collected = {}
    for owners, share_list in shares.values():
        for owner, share in zip(owners, share_list):
            collected.setdefault(owner, []).append(share)
    for share_list in collected.values():
        seed = combine_shares(share_list)
        total = parameters_subtraction(
            total, pseudo_rand_gen(seed, MODULUS_RANGE, get_parameters_shape(total)))
    total = parameters_mod(total, MODULUS_RANGE)
    q_total, recon = factor_extract(total)
    out = dequantize(recon, CLIPPING_RANGE, QUANTIZATION_RANGE)[0]
    return (out - (num_active - 1) * CLIPPING_RANGE) * (QUANTIZATION_RANGE / q_total)


def validate(peers, threshold, m=4096):
    """Every client through secaggplus_mod on a small vector; the mean must come back."""
    rng = np.random.default_rng(1)
    k = peers + 1
    updates = [rng.uniform(-1, 1, m).astype(np.float32) for _ in range(k)]
    examples = [300 + 100 * i for i in range(k)]
    clients = [Client(FIRST_NODE_ID + i, updates[i], examples[i]) for i in range(k)]
    _, masked, shares, _ = run_round(clients, np.zeros(m, np.float32), threshold)
    got = unmask_sum(masked, shares, k)
    # Flower weights by the quantised ratio round(examples / max_weight * 2^22) / 2^22.
    dq = [round(e / MAX_WEIGHT * QUANTIZATION_RANGE) / QUANTIZATION_RANGE for e in examples]
    want = sum(d * u.astype(np.float64) for d, u in zip(dq, updates)) / sum(dq)
    err = float(np.max(np.abs(got - want)))
    # Each client's stochastic rounding is off by < 1 step = 2 * 8 / 2^22 (plus float32 rounding
    # of the pre-quantised value, < 1/4 step); k clients, divided by the total ratio sum(dq).
    bound = k * 1.25 * (2 * CLIPPING_RANGE / QUANTIZATION_RANGE) / sum(dq)
    if not err <= bound:
        sys.exit(f"validation failed: max error {err:.3g} > bound {bound:.3g}")
    return {"n": m, "clients": k, "max_abs_error": err, "bound": bound}


# -------------------------------------------------------------- the masked-vector stage, step by step


def collect_breakdown(fitres, peer_pk1, sk1, rd_seed, nid):
    """`_collect_masked_vectors` of secaggplus_mod, line for line, each part timed."""
    t = {}
    t0 = clock()
    parameters = parameters_to_ndarrays(fitres.parameters)
    t["deserialise_update"] = clock() - t0

    t0 = clock()
    ratio = fitres.num_examples / MAX_WEIGHT
    q_ratio = round(ratio * QUANTIZATION_RANGE)
    dq_ratio = q_ratio / QUANTIZATION_RANGE
    parameters = parameters_multiply(parameters, dq_ratio)
    quantized = quantize(parameters, CLIPPING_RANGE, QUANTIZATION_RANGE)
    quantized = factor_combine(q_ratio, quantized)
    t["quantize"] = clock() - t0
    dims = [a.shape for a in quantized]

    prg = ecdh = 0.0
    t0 = clock()
    ta = clock()
    private_mask = pseudo_rand_gen(rd_seed, MODULUS_RANGE, dims)
    prg += clock() - ta
    quantized = parameters_addition(quantized, private_mask)
    del private_mask
    for other, pk1 in peer_pk1.items():
        ta = clock()
        shared_key = generate_shared_key(bytes_to_private_key(sk1), bytes_to_public_key(pk1))
        tb = clock()
        pairwise = pseudo_rand_gen(shared_key, MODULUS_RANGE, dims)
        tc = clock()
        ecdh += tb - ta
        prg += tc - tb
        if nid > other:
            quantized = parameters_addition(quantized, pairwise)
        else:
            quantized = parameters_subtraction(quantized, pairwise)
        del pairwise
    quantized = parameters_mod(quantized, MODULUS_RANGE)
    t["masks"] = clock() - t0
    t["masks_prg"] = prg
    t["masks_ecdh"] = ecdh
    t["masks_add_and_mod"] = t["masks"] - prg - ecdh

    t0 = clock()
    payload = [ndarray_to_bytes(a) for a in quantized]
    t["serialise_masked_vector"] = clock() - t0
    return t, quantized, payload


def crypto_breakdown(peers, threshold, repeats):
    """Setup and share-keys crypto of one client, and its decryption of the neighbours' shares."""
    parts = {"keygen": [], "shamir_create_shares": [], "ecdh_and_encrypt": [], "decrypt": []}
    for _ in range(repeats):
        t0 = clock()
        sk1, pk1 = generate_key_pairs()
        sk2, pk2 = generate_key_pairs()
        sk1b, sk2b = private_key_to_bytes(sk1), private_key_to_bytes(sk2)
        public_key_to_bytes(pk1), public_key_to_bytes(pk2)
        parts["keygen"].append(clock() - t0)

        t0 = clock()
        rd_seed = os.urandom(32)
        b_shares = create_shares(rd_seed, threshold, peers + 1)
        sk1_shares = create_shares(sk1b, threshold, peers + 1)
        parts["shamir_create_shares"].append(clock() - t0)

        others = [generate_key_pairs()[1] for _ in range(peers)]
        others_b = [public_key_to_bytes(p) for p in others]
        t0 = clock()
        cts, skeys = [], []
        for i, pk in enumerate(others_b):
            key = generate_shared_key(bytes_to_private_key(sk2b), bytes_to_public_key(pk))
            skeys.append(key)
            cts.append(encrypt(key, share_keys_plaintext_concat(1, i + 2, b_shares[i + 1],
                                                                sk1_shares[i + 1])))
        parts["ecdh_and_encrypt"].append(clock() - t0)

        # The neighbours' ciphertexts are the same size; decrypting ours times the same work.
        t0 = clock()
        for key, ct in zip(skeys, cts):
            share_keys_plaintext_separate(decrypt(key, ct))
        parts["decrypt"].append(clock() - t0)
    return {k: statistics.median(v) for k, v in parts.items()}


def mt_words_per_value(draw):
    """MT19937 32-bit words one value of `draw` consumes, from the generator's position."""
    gen = np.random.RandomState(12345)  # after seeding, pos = 624 (the next draw refills)
    m = 100_003
    draw(gen, m)
    pos = gen.get_state()[2]
    for k in (1, 2, 3):  # after w words, pos = ((w - 1) mod 624) + 1; m is chosen so k is unique
        if ((k * m - 1) % 624) + 1 == pos:
            return k
    return None


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def machine():
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "platform": platform.platform()}


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fedsilo_side(n, peers, bench_files):
    """fedsilo per round per silo: the ring allreduce model and secagg_bench's compute."""
    P = peers + 1
    words = n + 1  # n coordinates + the weight
    vector_bytes = 4 * words
    out = {
        "protocol": "pairwise AES-128-CTR masks from X25519 secrets, uint32 ring MPI_Allreduce",
        "bytes_sent_per_round": {
            "vector_ring_allreduce": 2 * (P - 1) * vector_bytes // P,
            "public_keys": 0,
            "shares": 0,
        },
        "bytes_received_per_round": {"vector_ring_allreduce": 2 * (P - 1) * vector_bytes // P},
        "bytes_per_run": {"public_key_allgather_sent": 32, "run_id_broadcast": 16},
        "mask_random_bytes_per_round": peers * vector_bytes,
        "rounding_random_bytes_per_round": vector_bytes,  # one uint32 per word (Philox, now AES)
        "secagg_bench": {},
    }
    for label, path in bench_files.items():
        with open(path) as f:
            b = json.load(f)
        # secagg_bench wrote encode_ms + masks_ms up to c0381a5, then code_ms + code_and_masks_ms
        # (the code and the masks fused in one pass).
        row = {"file": os.path.basename(path), "n": b.get("n"), "peers": b.get("peers"),
               "commit": b.get("commit"), "machine": b.get("machine"), "repeats": b.get("repeats"),
               "decode_s": b["decode_ms"] / 1e3}
        if "encode_ms" in b:
            row["code_s"] = b["encode_ms"] / 1e3
            row["masks_s"] = b["masks_ms"] / 1e3
            row["code_and_masks_s"] = row["code_s"] + row["masks_s"]
        else:
            row["code_s"] = b["code_ms"] / 1e3
            row["code_and_masks_s"] = b["code_and_masks_ms"] / 1e3
        out["secagg_bench"][label] = row
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1 << 24, help="vector length (float32)")
    ap.add_argument("--peers", type=int, default=7, help="neighbours of the client")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    ap.add_argument("--crypto-repeats", type=int, default=20)
    ap.add_argument("--clock", choices=sorted(_CLOCKS), default="cpu",
                    help="cpu: process CPU seconds (default); wall: elapsed seconds")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--fedsilo-json", action="append", default=[], metavar="LABEL=PATH",
                    help="a secagg_bench --json file for the same n and peers (repeatable); "
                         "default: results=benchmarks/secagg/results/secagg_bench.json")
    ap.add_argument("--json", default=os.path.join(here, "results", "flower_secaggplus.json"))
    args = ap.parse_args()
    n, peers = args.n, args.peers
    global _clock
    _clock = _CLOCKS[args.clock]
    k = peers + 1
    # As the workflow rounds a float threshold: round(ratio * num_shares), at least 2.
    threshold = max(round(THRESHOLD_RATIO * k), 2)

    bench_files = dict(a.split("=", 1) for a in args.fedsilo_json) or {
        "results": os.path.join(here, "results", "secagg_bench.json")}
    for path in bench_files.values():
        if not os.path.exists(path):
            sys.exit(f"no secagg_bench JSON at {path}")

    check = validate(peers, threshold)
    print(f"validation: {k} clients through secaggplus_mod, n = {check['n']}: "
          f"max error {check['max_abs_error']:.3g} <= {check['bound']:.3g}")

    rng = np.random.default_rng(2)
    update = rng.uniform(-1, 1, n).astype(np.float32)
    global_model = rng.uniform(-1, 1, n).astype(np.float32)
    num_examples = 500

    # End to end: the measured client's four stages through secaggplus_mod (1 warm-up).
    e2e = []
    for r in range(args.repeats + 1):
        clients = [Client(FIRST_NODE_ID + i, update if i == 0 else update[:1], num_examples)
                   for i in range(k)]
        stats, _, _, _ = run_round(clients, global_model, threshold, measured=FIRST_NODE_ID)
        if r > 0:
            e2e.append(stats)
        del clients
    stages = list(e2e[0]["seconds"])
    e2e_seconds = {s: summary([e["seconds"][s] for e in e2e]) for s in stages}
    last = e2e[-1]

    # The masked-vector stage step by step, with a key pair and neighbours of the same kind.
    sk1, _ = generate_key_pairs()
    sk1b = private_key_to_bytes(sk1)
    peer_pk1 = {FIRST_NODE_ID + i: public_key_to_bytes(generate_key_pairs()[1])
                for i in range(1, k)}
    fitres = Client(FIRST_NODE_ID, update, num_examples).fitres
    steps = []
    for r in range(args.repeats + 1):
        t, _, payload = collect_breakdown(fitres, peer_pk1, sk1b, os.urandom(32), FIRST_NODE_ID)
        if r > 0:
            steps.append(t)
        masked_payload_bytes = sum(len(p) for p in payload)
        del payload
    step_seconds = {s: summary([t[s] for t in steps]) for s in steps[0]}
    crypto = crypto_breakdown(peers, threshold, args.crypto_repeats)

    # Random words: one MT19937 word per mask value (randint below 2^32), two per rounding
    # double (np.random.rand: 53-bit doubles from two 32-bit words).
    mask_words = mt_words_per_value(
        lambda g, m: g.randint(0, MODULUS_RANGE - 1, (m,), dtype=np.int64))
    round_words = mt_words_per_value(lambda g, m: g.rand(m))
    masks = 1 + peers  # the self-mask and one pairwise mask per neighbour
    words = n + 1

    sent = last["sent"]
    received = last["received"]
    flower = {
        "config": {"num_shares": k, "neighbours": peers, "reconstruction_threshold": threshold,
                   "clipping_range": CLIPPING_RANGE, "quantization_range": QUANTIZATION_RANGE,
                   "modulus_range": MODULUS_RANGE, "max_weight": MAX_WEIGHT,
                   "num_examples": num_examples},
        "seconds_end_to_end_per_stage": e2e_seconds,
        "seconds_masked_vector_stage_steps": step_seconds,
        "seconds_crypto_steps_median": crypto,
        "seconds_key_agreement_and_shares": (crypto["keygen"] + crypto["shamir_create_shares"]
                                             + crypto["ecdh_and_encrypt"] + crypto["decrypt"]),
        "bytes_sent_per_round_protobuf": sent,
        "bytes_sent_per_round_protobuf_total": sum(sent.values()),
        "bytes_received_per_round_protobuf": received,
        "bytes_received_per_round_protobuf_total": sum(received.values()),
        "bytes_sent_per_round_payload": last["payload_sent"],
        "masked_vector_serialised_bytes": masked_payload_bytes,
        "mt19937_words_per_mask_value": mask_words,
        "mt19937_words_per_rounding_value": round_words,
        "mask_random_bytes_per_round": masks * words * mask_words * 4,
        "mask_materialised_bytes_per_round": masks * words * 8,  # int64 arrays
        "rounding_random_bytes_per_round": n * round_words * 4,
    }
    result = {
        "benchmark": "flower_secaggplus",
        "what": "one client's SecAgg+ round (flwr secaggplus_mod) beside one fedsilo silo's round",
        "n": n, "peers": peers, "silos": k, "repeats": args.repeats, "clock": args.clock,
        "load_average_at_end": os.getloadavg(),
        "command": " ".join(["python"] + sys.argv),
        "commit": git_commit(), "machine": machine(),
        "versions": {"flwr": flwr.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "validation": check,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "flower_secaggplus": flower,
        "fedsilo": fedsilo_side(n, peers, bench_files),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")

    print(f"flwr {flwr.__version__}, numpy {np.__version__}, n = {n}, {peers} neighbours, "
          f"threshold {threshold}; median of {args.repeats}, {args.clock} seconds")
    for s in stages:
        print(f"  stage {s:24s} {e2e_seconds[s]['median']:8.3f} s  sent {sent[s]:>11d} B  "
              f"received {received[s]:>11d} B")
    for s, v in step_seconds.items():
        print(f"  collect step {s:24s} {v['median']:8.3f} s")
    for s, v in crypto.items():
        print(f"  crypto {s:24s} {v * 1e3:8.2f} ms")
    print(f"  mask words/value {mask_words}, rounding words/value {round_words}; "
          f"max RSS {result['max_rss_bytes'] / 2**30:.2f} GiB")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
