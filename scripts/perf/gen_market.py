#!/usr/bin/env python3
"""Generates market_spread input for scripts/perf/e2e.sh: binary framed files of NBBO quotes and
orders (formats in cli/apps/market_spread.cc and WIRE.md section 6), and the number of rejection
frames market_spread must emit for them.

Files written to --out-dir (each a run of [u32 N][payload] frames, for `ringtail-send -y`):
  warmup.bin  one quote per symbol, symbols in order: sent first, alone, to "Market Data"
  quotes.bin  quotes on random symbols (at most --file-records): sent, repeated with -r -m
              --quotes, to "Market Data" during the timed phase
  orders.bin  orders on random symbols (at most --file-records): sent, repeated with -r -m
              --orders, to "Orders" during the timed phase
Small files repeated keep the sender's start-up (it loads and frames the whole file before the
first byte) out of the timing.

Every symbol is either always narrow (offer - bid = 0.02 on a price of 50..150: accepted) or
always wide (offer - bid = 0.25: rejected); every --wide-every'th symbol is wide. All quotes of a
symbol therefore set the same reject flag, so once the warm-up quotes are in, the interleaving of
the two timed connections cannot change which orders are rejected. The last order is on a wide
symbol sent (order (--orders - 1) % file size), so with one compute thread the last rejection
frame marks the end of the orders.

Prints one JSON line: counts, expected_rejections and expected_rejection_bytes (59 per frame).

scripts/perf/latency.sh --app market_spread uses it with --wide-every 2 --quotes 0: every second
symbol is wide, so about half the orders are rejected (exactly expected_rejections), and those are
the orders whose latency is sampled (ringtail-send --stamp-order-id numbers them in order_id).
"""

import argparse
import json
import os
import random
import struct
import sys

QUOTE = struct.Struct(">IB4s21sdd")  # [u32 42][u8 2][4s symbol][21s time][f64 bid][f64 offer]
ORDER = struct.Struct(">IBBI6s4sdd21s")  # [u32 53][u8 1][u8 side][u32 account][6s id][4s sym]...
REJECTION_FRAME = 4 + 55
TIME = b"20240102-09:30:00.000"
assert QUOTE.size == 4 + 42 and ORDER.size == 4 + 53 and len(TIME) == 21
B36 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def symbol_name(i):
    """Four bytes, distinct for i < 26**3: 'A'..'Z' x3 plus a space, as tickers are padded."""
    return bytes([65 + i // 676 % 26, 65 + i // 26 % 26, 65 + i % 26]) + b" "


def order_id(k):
    out = bytearray(6)
    for j in range(5, -1, -1):
        out[j] = B36[k % 36]
        k //= 36
    return bytes(out)


def rejects(bid, offer):
    """market_spread's rule (cli/apps/market_spread.cc, check())."""
    spread = offer - bid
    mid = (bid + offer) / 2
    return spread >= 0.05 or (mid > 0 and spread / mid >= 0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--quotes", type=int, default=100_000)
    ap.add_argument("--file-records", type=int, default=100_000,
                    help="most records per file; the sender repeats the file (-r -m)")
    ap.add_argument("--wide-every", type=int, default=10,
                    help="every n-th symbol is wide (its orders are rejected)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not 1 <= a.symbols <= 26**3 or a.orders < 1 or a.quotes < 0 or a.wide_every < 1 \
            or a.file_records < 1:
        sys.exit("gen_market.py: need 1 <= --symbols <= 17576, --orders >= 1, --quotes >= 0, "
                 "--wide-every >= 1, --file-records >= 1")

    rng = random.Random(a.seed)
    symbols = [symbol_name(i) for i in range(a.symbols)]
    wide = [i % a.wide_every == a.wide_every - 1 for i in range(a.symbols)]
    if not any(wide):
        sys.exit("gen_market.py: no wide symbol: lower --wide-every")
    base = [round(rng.uniform(50, 150), 2) for _ in range(a.symbols)]

    def quote(i):
        bid = round(base[i] + rng.randint(-100, 100) / 100, 2)
        offer = round(bid + (0.25 if wide[i] else 0.02), 2)
        assert rejects(bid, offer) == wide[i]
        return QUOTE.pack(42, 2, symbols[i], TIME, bid, offer), rejects(bid, offer)

    # The app's state per symbol, fed in the order e2e.sh guarantees: warm-up first, then orders
    # (timed quotes only ever repeat a symbol's flag, which is asserted above).
    reject_flag = {}
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "warmup.bin"), "wb") as f:
        for i in range(a.symbols):
            frame, flag = quote(i)
            reject_flag[i] = flag
            f.write(frame)
    with open(os.path.join(a.out_dir, "quotes.bin"), "wb") as f:
        buf = []
        for i in rng.choices(range(a.symbols), k=min(a.quotes, a.file_records)):
            buf.append(quote(i)[0])
        f.write(b"".join(buf))

    wide_ids = [i for i in range(a.symbols) if wide[i]]
    file_orders = min(a.orders, a.file_records)
    order_syms = rng.choices(range(a.symbols), k=file_orders)
    # The last order sent is rejected: its frame ends the timing.
    order_syms[(a.orders - 1) % file_orders] = wide_ids[-1]
    buf = []
    pack = ORDER.pack
    rejected = []
    for k, i in enumerate(order_syms):
        rejected.append(reject_flag.get(i, True))  # no quote yet rejects too, as in the app
        price = base[i]
        buf.append(pack(53, 1, 1 + (k & 1), 1000 + k % 5000, order_id(k), symbols[i],
                        float(100 + k % 900), price, TIME))
    with open(os.path.join(a.out_dir, "orders.bin"), "wb") as f:
        f.write(b"".join(buf))
    # ringtail-send -r -m sends order k % file_orders as its k-th message.
    full, rest = divmod(a.orders, file_orders)
    rejections = full * sum(rejected) + sum(rejected[:rest])

    print(json.dumps({
        "symbols": a.symbols,
        "wide_symbols": len(wide_ids),
        "warmup_quotes": a.symbols,
        "quotes": a.quotes,
        "orders": a.orders,
        "expected_rejections": rejections,
        "expected_rejection_bytes": rejections * REJECTION_FRAME,
    }))


if __name__ == "__main__":
    main()
