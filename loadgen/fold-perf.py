#!/usr/bin/env python3
"""perf script → per-function self and inclusive shares (by thread name too).
usage: perf script -i X | fold.py [--comm REGEX] [--top N] [--match REGEX ...]"""
import sys, re, collections, argparse
ap = argparse.ArgumentParser()
ap.add_argument('--comm', default=None)
ap.add_argument('--within', default=None, help='only samples whose stack has a frame matching this')
ap.add_argument('--top', type=int, default=40)
ap.add_argument('--width', type=int, default=110)
ap.add_argument('--inclusive', action='append', default=[])
args = ap.parse_args()
def short(sym):
    sym = re.sub(r'\+0x[0-9a-f]+$', '', sym)
    # strip generic args
    out, depth = [], 0
    for ch in sym:
        if ch == '<': depth += 1; 
        if depth == 0: out.append(ch)
        if ch == '>': depth = max(0, depth - 1)
    s = ''.join(out)
    s = re.sub(r'::\{closure[^}]*\}', '::{closure}', s)
    s = re.sub(r'::\{async[^}]*\}', '::{async}', s)
    return s[:args.width]
samples = []
comm = None; stack = []
def flush():
    global stack, comm
    if comm is not None and (args.comm is None or re.search(args.comm, comm)):
        if args.within is None or any(re.search(args.within, f) for f in stack):
            samples.append((comm, stack))
    stack = []; comm = None
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line.strip():
        flush(); continue
    if not line.startswith((' ', '\t')):
        flush(); comm = line.split()[0]; continue
    parts = line.strip().split(' ', 1)
    if len(parts) == 2:
        sym = parts[1]
        sym = re.sub(r' \(.*\)$', '', sym)
        stack.append(short(sym))
flush()
n = len(samples)
print(f'{n} samples')
comms = collections.Counter(c for c, _ in samples)
print('-- by thread')
for c, k in comms.most_common(12): print(f'{100*k/n:6.2f}%  {c}')
selfc = collections.Counter(s[0] if s else '?' for _, s in samples)
print('-- self')
for f, k in selfc.most_common(args.top): print(f'{100*k/n:6.2f}%  {f}')
incl = collections.Counter()
for _, s in samples:
    for f in set(s): incl[f] += 1
print('-- inclusive (functions matching filters)')
pats = [re.compile(p) for p in args.inclusive] or [re.compile(r'roomledger|sled::|moka::|serde_json|jsonwebtoken|hmac|sha2|postcard|prometheus|actix_web::|actix_http::|malloc|free')]
rows = [(k, f) for f, k in incl.items() if any(p.search(f) for p in pats)]
rows.sort(reverse=True)
for k, f in rows[:args.top*2]: print(f'{100*k/n:6.2f}%  {f}')
