#!/usr/bin/env python3
"""infra/module-cycles.py [SRC...]: module import circles within each crate (by default every
workspace member's src/). Edges come from `use crate::`, `crate::` paths,
`super::` and `self::` paths (resolved to the file modules they name; the crate root's
`pub use` re-exports followed to the module that defines the name). Prints each crate's
strongly connected components of more than one module; exit 1 when any. Test code
(`#[cfg(test)]` modules, inline or in files of their own) is left out, as it sits above
what it tests; CYCLES_TESTS=1 counts it too."""
import os, re, sys

def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == 'mod' or (len(parts) == 1 and parts[0] in ('lib', 'main')):
                parts = parts[:-1]
            if rel == 'main.rs' and os.path.exists(os.path.join(src, 'lib.rs')):
                continue  # a binary beside a library uses it by the crate's name
            mods[tuple(parts)] = os.path.join(src, rel)
    return mods

def test_only(mods, texts):
    """Modules declared `#[cfg(test)] mod name;`: test code, which may use anything."""
    out = set()
    for m, text in texts.items():
        for name in re.findall(r'#\[cfg\(test\)\]\s*(?:pub(?:\([\w:]+\))?\s+)?mod\s+(\w+)\s*;', text):
            out.add(m + (name,))
    return out

def strip_tests(text):
    """Drops inline `#[cfg(test)] mod name { ... }` blocks."""
    while True:
        m = re.search(r'#\[cfg\(test\)\]\s*(?:pub(?:\([\w:]+\))?\s+)?mod\s+\w+\s*\{', text)
        if not m:
            return text
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == '{':
                depth += 1
            elif text[i] == '}':
                depth -= 1
                if depth == 0:
                    break
            i += 1
        text = text[:m.start()] + text[i + 1:]

def strip_comments(text):
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    return re.sub(r'//[^\n]*', '', text)

def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]"""
    tree = re.sub(r'\s+', '', re.sub(r'\s+as\s+\w+', '', tree))
    i = tree.find('{')
    if i < 0:
        return [tree]
    head, depth, items, start = tree[:i], 0, [], i + 1
    for j in range(i, len(tree)):
        c = tree[j]
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                items.append(tree[start:j]); break
        elif c == ',' and depth == 1:
            items.append(tree[start:j]); start = j + 1
    return [p for item in items if item for p in expand(head + item)]

def paths(text):
    out = []
    for m in re.finditer(r'\buse\s+([^;]+);', text):
        out += expand(m.group(1))
    out += re.findall(r'(?<![:\w])((?:crate|super|self)(?:::\w+)+)', text)
    return out

def resolve(path, here, mods, reexports):
    parts = path.split('::')
    if parts[0] == 'crate':
        base, rest = (), parts[1:]
    elif parts[0] in ('super', 'self'):
        base = list(here)
        while parts and parts[0] in ('super', 'self'):
            if parts[0] == 'super' and base:
                base.pop()
            parts = parts[1:]
        base, rest = tuple(base), parts
    else:
        return None
    full = base + tuple(p for p in rest if p not in ('*', 'self'))
    for n in range(len(full), -1, -1):
        if full[:n] in mods and (n > 0 or not full):
            return full[:n]
    if full and full[0] in reexports:
        return reexports[full[0]]
    return None

def edges(src):
    mods = modules(src)
    texts = {m: strip_comments(open(p).read()) for m, p in mods.items()}
    if not INCLUDE_TESTS:
        tests = test_only(mods, texts)
        mods = {m: p for m, p in mods.items() if not any(m[:len(t)] == t for t in tests)}
        texts = {m: strip_tests(texts[m]) for m in mods}
    reexports = {}
    root = texts.get((), '')
    for path in [p for m in re.finditer(r'\bpub\s+use\s+([^;]+);', root) for p in expand(m.group(1))]:
        parts = path.split('::')
        if parts[0] == 'crate':
            parts = parts[1:]
        name = parts[-1]
        for n in range(len(parts), 0, -1):
            if tuple(parts[:n]) in mods:
                reexports[name] = tuple(parts[:n]); break
    graph = {m: set() for m in mods if m != ()}
    for m, text in texts.items():
        if m == ():
            continue
        for p in paths(text):
            target = resolve(p, m, mods, reexports)
            if target and target != () and target != m and not (m[:len(target)] == target):
                graph[m].add(target)
    return graph

def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    for v in graph:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]

INCLUDE_TESTS = os.environ.get("CYCLES_TESTS") == "1"
def workspace_sources():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    members = re.search(r'members\s*=\s*\[(.*?)\]', open(os.path.join(root, 'Cargo.toml')).read(), re.S)
    names = re.findall(r'"([^"]+)"', members.group(1))
    return [os.path.join(root, m, 'src') for m in names if os.path.isdir(os.path.join(root, m, 'src'))]

status = 0
for src in sys.argv[1:] or workspace_sources():
    graph = edges(src)
    cycles = sccs(graph)
    n = sum(len(v) for v in graph.values())
    print(f"{os.path.relpath(src)}: {len(graph)} modules, {n} edges, {len(cycles)} circle(s)")
    for c in cycles:
        status = 1
        names = ['::'.join(m) for m in sorted(c)]
        print('  circle:', ', '.join(names))
        for m in sorted(c):
            print('    ', '::'.join(m), '->', ', '.join(sorted('::'.join(t) for t in graph[m] if t in c)))
    if '-v' in os.environ.get('CYCLES_VERBOSE', ''):
        for m in sorted(graph):
            print('   ', '::'.join(m), '->', ', '.join(sorted('::'.join(t) for t in graph[m])))
sys.exit(status)
